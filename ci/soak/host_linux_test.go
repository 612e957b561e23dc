package soak

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/dockertest"
	"github.com/picket-agent/picket/internal/gittest"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/netnstest"
)

// Addresses (198.18.0.0/15 only, on veths inside the test's namespaces).
const (
	srvAdmin    = "198.18.2.1" // the host, as the admins reach it
	adminAddr   = "198.18.2.2" // an admin's workstation: in whitelist.admin_ips
	adminPrefix = "198.18.2.0/24"
	srvUsers    = "198.18.4.1"
	usersAddr   = "198.18.4.2" // the web site's visitors
	srvAttack   = "198.18.3.1"
	attackAddr  = "198.18.3.2" // the attacker
	attackPort  = "4444"
)

// host is the soak's machine: the private root, the signed config, the
// namespaces and init.sh running as their PID 1.
type host struct {
	t                     *testing.T
	repo                  string // repository root
	dir                   string // $SOAK
	priv                  string // private root (--host-root; /etc in the namespace)
	bin                   string // picket, built for the test (host side)
	boot                  string // bootstrap file
	stateDir              string
	adminKey              string
	srv, admin, users, at *netnstest.NS
	cgparent              string
	goBin, gocache        string

	init     *exec.Cmd // unshare; its child is init.sh, PID 1 of the namespace
	lifeline *os.File  // write end of init.sh's fd 3
	exited   chan struct{}
	pidNS    string // "pid:[inode]" of the namespace
}

// tools are the programs the soak runs; each missing one skips the test
// (or fails it in CI).
var tools = []string{"unshare", "nsenter", "ip", "nft", "dockerd", "docker", "containerd", "runc", "sshd", "ssh",
	"ssh-keygen", "nginx", "php-fpm8.2", "cron", "logrotate", "dpkg", "dpkg-deb", "nc", "git", "go", "busybox", "mount"}

func newHost(t *testing.T) *host {
	t.Helper()
	integration.Root(t)
	for _, name := range tools {
		integration.Binary(t, name)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: php-fpm's and nginx's workers (www-data) must
	// traverse it, and unix socket paths must stay short.
	dir, err := os.MkdirTemp("", "picket-soak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, repo: repo, dir: dir, priv: filepath.Join(dir, "root"), boot: filepath.Join(dir, "picket.cue"),
		stateDir: filepath.Join(dir, "state"), cgparent: fmt.Sprintf("picket-soak-%d", os.Getpid())}
	for _, d := range []string{"ctl", "pids", "progress", "logs", "opt", "ssh", "php", "nginx", "debs", "gowork", "gotmp",
		"tmp", "gopath", "backup", "docker-cli", "adminhome"} {
		h.mkdir(d, 0o755)
	}
	h.buildPicket()
	h.makePrivateRoot()
	h.makeConfig()
	h.makeDaemonConfigs()
	h.makePackages()
	h.makeGoModule()
	run(t, "cp", "-a", h.path("gowork"), h.path("gowork-admin"))
	h.goBin, _ = exec.LookPath("go")
	h.goBin, _ = filepath.Abs(h.goBin)
	h.gocache = strings.TrimSpace(run(t, "go", "env", "GOCACHE"))
	if err := os.WriteFile(filepath.Join(dir, "busybox.tar"), dockertest.BusyboxTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	h.makeNetwork()
	return h
}

func (h *host) path(rel string) string { return filepath.Join(h.dir, rel) }

func (h *host) mkdir(rel string, mode os.FileMode) {
	h.t.Helper()
	if err := os.MkdirAll(h.path(rel), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) write(path, content string, mode os.FileMode) {
	h.t.Helper()
	if !filepath.IsAbs(path) {
		path = h.path(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		h.t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildPicket builds the agent; the namespace mounts the directory at
// /srv, so the agent runs from /srv/picket and not from /tmp.
// PICKET_SOAK_BINARY names a prebuilt binary to soak instead (an older
// commit's, to see what the test catches).
func (h *host) buildPicket() {
	h.bin = h.path("opt/picket")
	if prebuilt := os.Getenv("PICKET_SOAK_BINARY"); prebuilt != "" {
		run(h.t, "cp", prebuilt, h.bin)
		h.t.Logf("soaking the prebuilt %s", prebuilt)
		return
	}
	cmd := exec.Command("go", "build", "-o", h.bin, "./cmd/picket")
	cmd.Dir = h.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("go build ./cmd/picket: %v: %s", err, out)
	}
}

// policy is the signed config: enforce, the admin network whitelisted, the
// sensors pointed at this host's logs and dockerd, the /proc scan fast
// enough for short-lived processes.
const policy = `mode: "enforce"
whitelist: admin_ips: soak_admins: {cidr: %q, note: "the soak test's admin network"}
sensors: {
	auth: {source: "file", files: ["/var/log/auth.log"]}
	web: files: ["/var/log/nginx/access.log"]
	process: {mode: "auto", scan_interval: "200ms", docker_socket: "/run/docker.sock"}
	containers: interval: "2s"
	network: interval: "1s"
}
`

// makeConfig writes a config repository signed by a trusted key and the
// bootstrap file pointing at it, and applies it once (picket sync --once)
// so that the agent starts on it rather than on the embedded default.
func (h *host) makeConfig() {
	t := h.t
	key := h.path("config_signer")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	h.write("trust/allowed_signers", "ops@soak.invalid "+string(pub), 0o600)
	work := gittest.NewRepo(t)
	work.Commit(t, map[string]string{"picket.cue": fmt.Sprintf(policy, adminPrefix)}, "soak policy",
		"-c", "gpg.format=ssh", "-c", "user.signingkey="+key, "-S")
	remote := gittest.NewBareRepo(t, h.path("config.git"))
	work.Git(t, "push", "-q", remote.Dir, "main")
	h.write(h.boot, fmt.Sprintf(`hostname: "soak"
repository: {
	url: %q
	interval: "10s"
	host_key: %q
	known_hosts: %q
}
trust_dir: %q
state_dir: %q
credentials: %q
`, remote.Dir, h.path("host_key"), h.path("known_hosts"), h.path("trust"), h.stateDir, h.path("credentials")), 0o600)
	if out, err := exec.Command(h.bin, "sync", "--once", "--config", h.boot).CombinedOutput(); err != nil {
		t.Fatalf("picket sync --once: %v: %s", err, out)
	}
}

// makeNetwork: the host's namespace (srv) with one veth to each of the
// admin's, the visitors' and the attacker's namespaces.
func (h *host) makeNetwork() {
	t := h.t
	h.srv = netnstest.New(t, "soak", "srv")
	h.admin = netnstest.New(t, "soak", "adm")
	h.users = netnstest.New(t, "soak", "usr")
	h.at = netnstest.New(t, "soak", "atk")
	netnstest.Link(t, h.srv, "sk-adm", srvAdmin+"/24", h.admin, "sk-adm0", adminAddr+"/24")
	netnstest.Link(t, h.srv, "sk-usr", srvUsers+"/24", h.users, "sk-usr0", usersAddr+"/24")
	netnstest.Link(t, h.srv, "sk-atk", srvAttack+"/24", h.at, "sk-atk0", attackAddr+"/24")
}

// start runs init.sh as PID 1 of new PID and mount namespaces inside the
// srv network namespace. nsenter rather than `ip netns exec`: the latter
// mounts a fresh /sys, which hides the cgroup mounts dockerd needs.
// --kill-child: when unshare dies, init.sh gets SIGKILL, and with it
// every process of the namespace.
func (h *host) start(learning time.Duration) {
	t := h.t
	logf, err := os.Create(h.path("logs/init.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.init = exec.Command("nsenter", "--net=/run/netns/"+h.srv.Name, "--",
		"unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
		"bash", filepath.Join(h.repo, "ci/soak/init.sh"))
	h.init.Env = append(os.Environ(), "SOAK="+h.dir, "PRIV="+h.priv, "PICKET_DIR="+h.path("opt"), "BOOT="+h.boot,
		"LEARN="+learning.String(), "CGPARENT="+h.cgparent, "GO_BIN="+h.goBin, "GOCACHE="+h.gocache,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:"+filepath.Dir(h.goBin))
	h.init.Stdout, h.init.Stderr = logf, logf
	// init.sh's fd 3 is the read end of a pipe only this process writes:
	// if the test dies without its cleanup (a go test timeout), init.sh
	// reads EOF and exits, and the namespace goes with it.
	lifeline, keep, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	h.init.ExtraFiles = []*os.File{lifeline}
	if err := h.init.Start(); err != nil {
		t.Fatal(err)
	}
	lifeline.Close()
	h.lifeline = keep
	h.exited = make(chan struct{})
	go func() { _ = h.init.Wait(); logf.Close(); close(h.exited) }()
	t.Cleanup(h.stop)
	h.waitFor("init.sh started the daemons and the agent", 90*time.Second, func() bool {
		if b, err := os.ReadFile(h.path("ctl/failed")); err == nil {
			if bytes.HasPrefix(b, []byte("dockerd did not answer")) {
				// As internal/dockertest: a machine where dockerd cannot
				// run skips (fails in CI).
				integration.Skip(t, string(b))
			}
			t.Fatalf("init.sh failed: %s\n%s", b, h.tail("logs/init.log", 3000))
		}
		_, err := os.Stat(h.path("ctl/ready"))
		return err == nil
	})
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.nsPID(1)))
	if err != nil {
		t.Fatal(err)
	}
	h.pidNS = ns
}

// nsPID maps a PID inside the namespace to the host's, through the
// NSpid line of every process whose parent chain starts at unshare.
func (h *host) nsPID(inner int) int {
	for _, p := range h.procs() {
		if p.NSPID == inner {
			return p.PID
		}
	}
	return 0
}

// stop tears the namespace down: containers removed and dockerd stopped
// first (it removes its cgroups), then unshare killed by PID, which
// SIGKILLs init.sh and so every process of the namespace; leftover
// cgroup directories of the test's parent are removed.
func (h *host) stop() {
	t := h.t
	select {
	case <-h.exited:
	default:
		_ = os.WriteFile(h.path("ctl/stop"), nil, 0o644)
		if out, err := h.nsexec(30*time.Second, "sh", "-c", "ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids"); err != nil {
			t.Logf("removing containers: %v: %s", err, out)
		}
		if pid := h.nsPIDFile("dockerd"); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(20 * time.Second)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
		}
		_ = h.init.Process.Kill()
		<-h.exited
	}
	h.lifeline.Close()
	// The kernel kills the namespace's processes asynchronously.
	deadline := time.Now().Add(20 * time.Second)
	for len(h.procs()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := h.procs(); len(left) > 0 {
		t.Errorf("processes left in the soak's PID namespace: %v", left)
	}
	for _, ctrl := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""} {
		removeCgroupTree(t, filepath.Join("/sys/fs/cgroup", ctrl, h.cgparent))
	}
	if t.Failed() {
		t.Logf("init.sh:\n%s", h.tail("logs/init.log", 3000))
		t.Logf("agent log (last 6000 bytes):\n%s", h.tail("logs/agent.log", 6000))
	}
}

// removeCgroupTree removes empty cgroup directories below and at dir
// (deepest first); cgroupfs refuses a directory with processes.
func removeCgroupTree(t *testing.T, dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil {
			t.Logf("rmdir %s: %v", dirs[i], err)
		}
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func (h *host) nsPIDFile(name string) int {
	b, err := os.ReadFile(h.path("pids/" + name))
	if err != nil {
		return 0
	}
	var inner int
	fmt.Sscan(string(b), &inner)
	return h.nsPID(inner)
}

// nsexec runs a command inside the soak's namespaces (mount and PID too:
// docker and the private /run are only there).
func (h *host) nsexec(timeout time.Duration, args ...string) (string, error) {
	pid := 0
	if h.init != nil && h.init.Process != nil {
		pid = h.nsPID(1)
	}
	if pid == 0 {
		return "", fmt.Errorf("the soak's namespace is not running")
	}
	cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-m", "-p", "-n", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+h.path("docker-cli"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("timed out after %s", timeout)
	}
}

// proc is a process of the soak's PID namespace seen from the host.
type proc struct {
	PID, NSPID, PPID int
	Comm, Cmdline    string
	State            string // "Z (zombie)": dead, not yet reaped
	Start            string // field 22 of stat: tells a pid's reuse apart
}

func (p proc) String() string { return fmt.Sprintf("%d(ns %d) %s", p.PID, p.NSPID, p.Cmdline) }

// procs lists the processes of the namespace: those whose NSpid line has
// two levels, whose outer PID is unshare's child or one of its
// descendants in the same PID namespace.
func (h *host) procs() []proc {
	if h.init == nil || h.init.Process == nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		p, ok := readProc(pid)
		if !ok {
			continue
		}
		if h.pidNS != "" {
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || ns != h.pidNS {
				continue
			}
		} else if p.PPID != h.init.Process.Pid || p.NSPID != 1 {
			continue
		}
		out = append(out, p)
	}
	return out
}

func readProc(pid int) (proc, bool) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return proc{}, false
	}
	p := proc{PID: pid}
	for line := range strings.SplitSeq(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch k {
		case "Name":
			p.Comm = strings.TrimSpace(v)
		case "State":
			p.State = strings.TrimSpace(v)
		case "PPid":
			fmt.Sscan(v, &p.PPID)
		case "NSpid":
			if len(f) != 2 {
				return proc{}, false // not in a child PID namespace
			}
			fmt.Sscan(f[1], &p.NSPID)
		}
	}
	if p.NSPID == 0 {
		return proc{}, false
	}
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 19 {
				p.Start = f[19]
			}
		}
	}
	return p, true
}

// nsTail is tail for a file of the namespace's private mounts (read
// through /proc/PID/root of its init).
func (h *host) nsTail(path string, n int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", h.nsPID(1), path))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (h *host) tail(rel string, n int) string {
	b, _ := os.ReadFile(h.path(rel))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitFor polls cond every 100 ms until it holds; the namespace dying or
// the deadline passing fails the test.
func (h *host) waitFor(what string, d time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-h.exited:
			h.t.Fatalf("the soak's namespace died while waiting for %s:\n%s", what, h.tail("logs/init.log", 3000))
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// picket runs the CLI from the host (it reads the state directory; the
// agent never sees these processes).
func (h *host) picket(args ...string) (string, error) {
	out, err := exec.Command(h.bin, append(args, "--config", h.boot)...).Output()
	return string(out), err
}

type agentStatus struct {
	State     string    `json:"state"`
	Heartbeat time.Time `json:"heartbeat"`
	Mode      string    `json:"mode"`
	Learning  struct {
		Active bool      `json:"active"`
		Ends   time.Time `json:"ends"`
	} `json:"learning"`
	Config struct {
		Source   string `json:"source"`
		Revision string `json:"revision"`
	} `json:"config"`
	Sensors []struct {
		Name, State, Detail string
	} `json:"sensors"`
	Counters struct {
		Events  int64 `json:"events"`
		Signals int64 `json:"signals"`
	} `json:"counters"`
}

func (h *host) status() (agentStatus, bool) {
	var st agentStatus
	// Exit status ignored: status judges "running" by the agent's PID,
	// which is the namespace's and not the host's; the JSON is what counts.
	out, _ := h.picket("status", "--json")
	if json.Unmarshal([]byte(out), &st) != nil {
		return st, false
	}
	return st, true
}
