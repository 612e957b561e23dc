package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/account"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/agent/control"
	"github.com/picket-agent/picket/agent/feedback"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/internal/dockertest"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/netnstest"
	"github.com/picket-agent/picket/internal/sshdtest"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// Issue 7's checks, with the real executors: nftables in a server
// namespace S, clients in their own namespaces, real TCP and a real sshd.
//
//	C1 198.18.1.2 (attacker)  ── S 198.18.1.1
//	C2 198.18.2.2 (other)     ── S 198.18.2.1
//	C3 198.18.3.2 (admin)     ── S 198.18.3.1
type handsRig struct {
	s, c1, c2, c3 *netnstest.NS
	dir           string
	st            *state.Store
	h             *Hands
	pol           *schema.Policy
}

const testTable = "picket-test"

func newHandsRig(t *testing.T) *handsRig {
	t.Helper()
	integration.Binary(t, "nft")
	r := &handsRig{s: netnstest.New(t, "hands", "s"), c1: netnstest.New(t, "hands", "c1"),
		c2: netnstest.New(t, "hands", "c2"), c3: netnstest.New(t, "hands", "c3")}
	for i, c := range []*netnstest.NS{r.c1, r.c2, r.c3} {
		n := i + 1
		netnstest.Link(t, r.s, fmt.Sprintf("s-c%d", n), fmt.Sprintf("198.18.%d.1/24", n), c, fmt.Sprintf("c%d", n), fmt.Sprintf("198.18.%d.2/24", n))
		c.IP(t, "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", n))
		c.Serve(t, fmt.Sprintf("198.18.%d.2:7000", n))
	}
	r.s.Serve(t, "0.0.0.0:7000")
	r.dir = t.TempDir()
	etc := filepath.Join(r.dir, "root", "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "shadow"), []byte("root:*:19000:0:99999:7:::\nalice:$y$j9T$salt$hash:19000:0:99999:7:::\n"), 0o640)
	var err error
	r.st, err = state.Open(context.Background(), filepath.Join(r.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.st.Close() })
	r.pol, err = schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	r.pol.Whitelist.AdminIPs = map[string]schema.WhitelistIP{"admin": {CIDR: "198.18.3.2"}}
	r.pol.Actions.Health.Checks = nil
	r.pol.Actions.ReconcileInterval = schema.Duration(time.Second)
	r.h = r.hands(t, r.st)
	return r
}

func (r *handsRig) hands(t *testing.T, st *state.Store) *Hands {
	t.Helper()
	h, err := NewHands(HandsConfig{Store: st, StateDir: filepath.Join(r.dir, "state"), Table: testTable, NetNS: r.s.FD(),
		Accounts: account.Files{Passwd: filepath.Join(r.dir, "root/etc/passwd"), Shadow: filepath.Join(r.dir, "root/etc/shadow")},
		Nologin:  filepath.Join(r.dir, "nologin"), ResolvConf: filepath.Join(r.dir, "resolv.conf"), DockerSocket: filepath.Join(r.dir, "no-docker.sock")})
	if err != nil {
		t.Fatal(err)
	}
	if h.Firewall == nil {
		t.Fatal("no firewall in the test namespace")
	}
	t.Cleanup(func() {
		h.Firewall.Remove()
		h.Close()
	})
	h.SetPolicy(r.pol)
	return h
}

func (r *handsRig) do(t *testing.T, kind, target string, ttl time.Duration) actions.Action {
	t.Helper()
	a, err := r.h.Engine.Do(context.Background(), actions.Request{Incident: 1, Kind: kind, Target: target, TTL: ttl, Reason: "test incident at contain"})
	if err != nil {
		t.Fatalf("%s %s: %v", kind, target, err)
	}
	return a
}

func (r *handsRig) reach(from *netnstest.NS, dst string) bool { return from.Dial("", dst) == nil }

func TestBlockSourceAndExpiry(t *testing.T) {
	r := newHandsRig(t)
	if !r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("no connectivity before the block")
	}
	a := r.do(t, actions.BlockSource, "198.18.1.2", 3*time.Second)
	if a.Status != actions.StatusApplied {
		t.Fatalf("block: %+v", a)
	}
	if r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("blocked source still connects")
	}
	if !r.reach(r.c2, "198.18.2.1:7000") {
		t.Fatal("another source is blocked too")
	}
	// The kernel drops the element at its TTL without the agent.
	netnstest.Eventually(t, 6*time.Second, "the block did not expire in the kernel", func() bool { return r.reach(r.c1, "198.18.1.1:7000") })
	if err := r.h.Engine.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := r.st.Action(context.Background(), a.ID)
	if got.Status != actions.StatusExpired {
		t.Fatalf("journal after expiry: %+v", got)
	}
}

// TestAdminNeverBlocked: whatever the incident, the admin address is
// refused by the guard and keeps connecting.
func TestAdminNeverBlocked(t *testing.T) {
	r := newHandsRig(t)
	for _, target := range []string{"198.18.3.2", "198.18.3.0/24", "198.18.0.0/15"} {
		if a := r.do(t, actions.BlockSource, target, time.Minute); a.Status != actions.StatusRefused {
			t.Fatalf("%s: %+v", target, a)
		}
	}
	if !r.reach(r.c3, "198.18.3.1:7000") {
		t.Fatal("admin cannot connect")
	}
}

// TestFlushReasserted: `nft flush ruleset` while a block is in force; the
// running engine restores it (watch, or the reconcile period).
func TestFlushReasserted(t *testing.T) {
	r := newHandsRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Through the queue, as the agent does: Run owns the host side.
	if err := r.st.Update(ctx, func(tx *state.Tx) error {
		return tx.PutIncident(ctx, state.IncidentRow{ID: 1, Opened: time.Now(), Updated: time.Now(), Status: "open", Level: "contain", Doc: []byte("{}")})
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.h.Engine.Submit(ctx, actions.Request{Incident: 1, Kind: actions.BlockSource, Target: "198.18.1.2", TTL: time.Minute, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	netnstest.Eventually(t, 5*time.Second, "block not applied", func() bool { return !r.reach(r.c1, "198.18.1.1:7000") })
	r.s.Exec(t, "nft", "flush", "ruleset")
	netnstest.Eventually(t, 5*time.Second, "block not re-asserted after nft flush ruleset", func() bool {
		return !r.reach(r.c1, "198.18.1.1:7000")
	})
	if !strings.Contains(auditText(t, r.st), "re-asserted") {
		t.Fatal("re-assertion not audited")
	}
}

// TestHealthCheckRollsBack: a block that breaks a health check (the
// monitored service is the blocked destination) is rolled back at once.
func TestHealthCheckRollsBack(t *testing.T) {
	r := newHandsRig(t)
	// The check runs where the service is reached from: inside S.
	py := integration.Binary(t, "python3")
	r.pol.Actions.Health.Checks = []schema.Check{{Name: "monitor", Timeout: schema.Duration(3 * time.Second),
		Exec: []string{integration.Binary(t, "ip"), "netns", "exec", r.s.Name, py, "-c", "import socket; socket.create_connection(('198.18.2.2', 7000), 1)"}}}
	a := r.do(t, actions.BlockDestination, "198.18.2.2", time.Hour)
	if a.Status != actions.StatusRolledBack || !strings.Contains(a.Note, `"monitor"`) {
		t.Fatalf("not rolled back: %+v", a)
	}
	if !r.reach(r.s, "198.18.2.2:7000") {
		t.Fatal("destination still blocked after the rollback")
	}
}

// TestContainment: outbound only to the allow list, an established SSH
// session survives, new SSH only from the admin, and everything is as
// before at expiry.
func TestContainment(t *testing.T) {
	r := newHandsRig(t)
	srv := sshdtest.StartIn(t, []string{"ip", "netns", "exec", r.s.Name}, "0.0.0.0", 2222)
	r.pol.Actions.Containment.Allow = []string{"198.18.2.2"}
	if err := r.h.Firewall.Ensure(); err != nil {
		t.Fatal(err)
	}
	r.h.SetPolicy(r.pol) // fills the admin set, as a reload does
	before := r.s.Exec(t, "nft", "list", "ruleset")
	// An SSH session opened before containment.
	var sess net.Conn
	var rd *bufio.Reader
	err := r.c1.Do(func() (err error) {
		sess, err = net.DialTimeout("tcp", "198.18.1.1:2222", 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("ssh before containment: %v", err)
	}
	defer sess.Close()
	sess.SetDeadline(time.Now().Add(5 * time.Second))
	rd = bufio.NewReader(sess)
	if l, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(l, "SSH-") {
		t.Fatalf("banner: %q %v", l, err)
	}
	_ = srv

	a := r.do(t, actions.Containment, "host", 5*time.Second)
	if a.Status != actions.StatusApplied {
		t.Fatalf("containment: %+v", a)
	}
	if !r.reach(r.s, "198.18.2.2:7000") {
		t.Fatal("outbound to the allow list fails")
	}
	if r.reach(r.s, "198.18.1.2:7000") {
		t.Fatal("outbound to a non-allowed address works")
	}
	// The established session continues: our ident gets the server's
	// key exchange back.
	if _, err := sess.Write([]byte("SSH-2.0-picket-test\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Peek(16); err != nil {
		t.Fatalf("established SSH session cut: %v", err)
	}
	if sshBanner(r.c1, "198.18.1.1:2222") == nil {
		t.Fatal("new SSH from a non-admin address works during containment")
	}
	if err := sshBanner(r.c3, "198.18.3.1:2222"); err != nil {
		t.Fatalf("new SSH from the admin address fails: %v", err)
	}
	// At expiry (kernel timeout, then the engine's expiry) all is back.
	time.Sleep(time.Until(a.Expires))
	if err := r.h.Engine.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.reach(r.s, "198.18.1.2:7000") || sshBanner(r.c1, "198.18.1.1:2222") != nil {
		t.Fatal("containment still in force after expiry")
	}
	if after := r.s.Exec(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("ruleset differs from the snapshot:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func sshBanner(from *netnstest.NS, addr string) error {
	return from.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 700*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		l, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "SSH-") {
			return fmt.Errorf("not ssh: %q", l)
		}
		return nil
	})
}

// TestDisableUserRoundTrip: disable then roll back leaves the shadow file
// byte-identical, and the emergency registry empty.
func TestDisableUserRoundTrip(t *testing.T) {
	r := newHandsRig(t)
	shadow := filepath.Join(r.dir, "root/etc/shadow")
	orig, _ := os.ReadFile(shadow)
	a := r.do(t, actions.DisableUser, "alice", time.Hour)
	if a.Status != actions.StatusApplied {
		t.Fatalf("disable: %+v", a)
	}
	if exp, _ := account.Expire(account.Files{Passwd: filepath.Join(r.dir, "root/etc/passwd"), Shadow: shadow}, "alice"); exp != account.DisabledExpire {
		t.Fatalf("expiry %q", exp)
	}
	if a := r.do(t, actions.DisableUser, "root", time.Hour); a.Status != actions.StatusRefused {
		t.Fatalf("root: %+v", a)
	}
	if _, err := r.h.Engine.Rollback(context.Background(), a.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(shadow); string(now) != string(orig) {
		t.Fatalf("shadow changed:\n%s\nwas\n%s", now, orig)
	}
	users, _ := (&emergency.Registry{Dir: emergency.DirIn(filepath.Join(r.dir, "state"))}).Users()
	if len(users) != 0 {
		t.Fatalf("registry still lists %v", users)
	}
}

// TestEmergencyScript: the standalone script undoes a block, containment,
// an SSH pause and a disabled account with no picket binary at all.
func TestEmergencyScript(t *testing.T) {
	r := newHandsRig(t)
	integration.Binary(t, "chage")
	nologin := filepath.Join(r.dir, "nologin")
	os.WriteFile(nologin, []byte("maintenance until 18:00\n"), 0o644)
	shadow := filepath.Join(r.dir, "root/etc/shadow")
	for _, k := range []struct{ kind, target string }{
		{actions.BlockSource, "198.18.1.2"}, {actions.Containment, "host"}, {actions.PauseSSH, "sshd"}, {actions.DisableUser, "alice"},
	} {
		if a := r.do(t, k.kind, k.target, time.Hour); a.Status != actions.StatusApplied {
			t.Fatalf("%s: %+v", k.kind, a)
		}
	}
	if r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("not blocked")
	}
	script := filepath.Join(t.TempDir(), "picket-emergency-stop")
	os.WriteFile(script, emergency.Script, 0o755)
	for run := 0; run < 2; run++ { // idempotent
		cmd := exec.Command("ip", "netns", "exec", r.s.Name, "/bin/sh", script)
		cmd.Env = append(os.Environ(), "PICKET_STATE_DIR="+filepath.Join(r.dir, "state"), "PICKET_ROOT="+filepath.Join(r.dir, "root"),
			"PICKET_NOLOGIN="+nologin, "PICKET_NFT_TABLE="+testTable, "DOCKER_SOCKET="+filepath.Join(r.dir, "no-docker.sock"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		t.Logf("run %d:\n%s", run, out)
	}
	if strings.Contains(r.s.Exec(t, "nft", "list", "tables"), testTable) {
		t.Fatal("table still there")
	}
	if !r.reach(r.c1, "198.18.1.1:7000") || !r.reach(r.s, "198.18.1.2:7000") {
		t.Fatal("traffic still blocked")
	}
	if b, _ := os.ReadFile(nologin); string(b) != "maintenance until 18:00\n" {
		t.Fatalf("nologin: %q", b)
	}
	if exp, _ := account.Expire(account.Files{Passwd: filepath.Join(r.dir, "root/etc/passwd"), Shadow: shadow}, "alice"); exp != "" {
		t.Fatalf("alice still expires: %q", exp)
	}
}

func auditText(t *testing.T, st *state.Store) string {
	t.Helper()
	var b strings.Builder
	err := st.EachAudit(context.Background(), state.AuditFilter{}, func(e audit.Entry) error {
		b.WriteString(e.Message + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBlockAfterSIGKILL: the process that applied a block is killed with
// SIGKILL right after; the block still holds, disappears at its TTL in the
// kernel, and the next start journals it as expired.
func TestBlockAfterSIGKILL(t *testing.T) {
	if os.Getenv("PICKET_HANDS_CHILD") != "" {
		return // the child's work is in TestHandsChild
	}
	r := newHandsRig(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHandsChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PICKET_HANDS_CHILD=1", "PICKET_HANDS_NS="+r.s.Name, "PICKET_HANDS_DIR="+r.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	applied := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "APPLIED") {
			applied = true
			break
		}
	}
	if !applied {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not apply the block")
	}
	cmd.Process.Signal(os.Kill)
	cmd.Wait()
	if r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("block gone with the killed process")
	}
	netnstest.Eventually(t, 8*time.Second, "block did not expire in the kernel after SIGKILL", func() bool { return r.reach(r.c1, "198.18.1.1:7000") })
	// The next start repairs the journal.
	if err := r.h.Engine.Reconcile(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	list, _ := actions.List(context.Background(), r.st, 0)
	if len(list) != 1 || list[0].Status != actions.StatusExpired || !strings.Contains(list[0].Note, "not running") {
		t.Fatalf("journal after restart: %+v", list)
	}
}

// TestHandsChild is the process TestBlockAfterSIGKILL kills.
func TestHandsChild(t *testing.T) {
	if os.Getenv("PICKET_HANDS_CHILD") == "" {
		t.Skip("helper process of TestBlockAfterSIGKILL")
	}
	dir := os.Getenv("PICKET_HANDS_DIR")
	ns, err := os.Open("/run/netns/" + os.Getenv("PICKET_HANDS_NS"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHands(HandsConfig{Store: st, StateDir: filepath.Join(dir, "state"), Table: testTable, NetNS: int(ns.Fd()),
		ResolvConf: filepath.Join(dir, "resolv.conf"), DockerSocket: filepath.Join(dir, "no-docker.sock")})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := schema.Default()
	p.Actions.Health.Checks = nil
	h.SetPolicy(p)
	a, err := h.Engine.Do(context.Background(), actions.Request{Incident: 1, Kind: actions.BlockSource, Target: "198.18.1.2", TTL: 3 * time.Second, Reason: "test"})
	if err != nil || a.Status != actions.StatusApplied {
		t.Fatalf("%+v %v", a, err)
	}
	fmt.Println("APPLIED")
	time.Sleep(time.Minute)
}

// TestIncidentBlocksSource drives the whole agent: SSH failures from C1 in
// the auth log become an incident at contain, whose plan the engine applies
// in S's firewall; C1 is refused, C2 is not, and the incident is contained.
func TestIncidentBlocksSource(t *testing.T) {
	r := newHandsRig(t)
	h := r.agentBlocking(t)
	defer h.stop()
	if !r.reach(r.c2, "198.18.2.1:7000") {
		t.Fatal("another source is blocked")
	}
	netnstest.Eventually(t, 5*time.Second, "incident not marked contained", func() bool {
		for _, in := range h.incidents() {
			if in.Status == "contained" {
				return true
			}
		}
		return false
	})
}

// agentBlocking runs an enforcing agent driving the rig's firewall and
// waits until SSH failures from C1 got C1 blocked.
func (r *handsRig) agentBlocking(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.policy = r.pol
	h.policy.Mode = "enforce"
	h.policy.Learning.Period = 0
	h.hands = r.hands(t, mustOpen(t, h.dir))
	h.start()
	time.Sleep(100 * time.Millisecond)
	h.appendLines(failures("198.18.1.2", 6, time.Now())...)
	netnstest.Eventually(t, 10*time.Second, "the attacker was not blocked", func() bool { return !r.reach(r.c1, "198.18.1.1:7000") })
	return h
}

func mustOpen(t *testing.T, dir string) *state.Store {
	t.Helper()
	st, err := state.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestIsolateContainer: isolation through the engine against a real
// dockerd, undone by a rollback, then again by the standalone script.
func TestIsolateContainer(t *testing.T) {
	d := dockertest.Start(t)
	d.ImportBusybox("picket-h:1")
	d.Network("picket-hnet", "198.18.80.0/24")
	id := d.Run("picket-hweb", map[string]any{"Image": "picket-h:1", "Cmd": []string{"sleep", "300"},
		"HostConfig":       map[string]any{"NetworkMode": "picket-hnet"},
		"NetworkingConfig": map[string]any{"EndpointsConfig": map[string]any{"picket-hnet": map[string]any{"Aliases": []string{"web"}}}}})
	nets := func() string {
		var v struct {
			NetworkSettings struct {
				Networks map[string]struct{ Aliases []string }
			}
			State struct{ Paused bool }
		}
		json.Unmarshal(d.JSON("GET", "/containers/"+id+"/json", nil, 200), &v)
		var out []string
		for n, e := range v.NetworkSettings.Networks {
			for _, a := range e.Aliases {
				if a == "web" {
					n += "(web)"
				}
			}
			out = append(out, n)
		}
		if v.State.Paused {
			out = append(out, "paused")
		}
		return strings.Join(out, ",")
	}
	if got := nets(); got != "picket-hnet(web)" {
		t.Fatalf("setup: %s", got)
	}
	dir := t.TempDir()
	st := mustOpen(t, filepath.Join(dir, "state"))
	h, err := NewHands(HandsConfig{Store: st, StateDir: filepath.Join(dir, "state"), NoFirewall: true, DockerSocket: d.Socket,
		ResolvConf: filepath.Join(dir, "resolv.conf")})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := schema.Default()
	p.Actions.Health.Checks = nil
	h.SetPolicy(p)
	ctx := context.Background()
	a, err := h.Engine.Do(ctx, actions.Request{Incident: 1, Kind: actions.IsolateContainer, Target: "picket-hweb", TTL: time.Hour, Reason: "test"})
	if err != nil || a.Status != actions.StatusApplied {
		t.Fatalf("isolate: %+v %v", a, err)
	}
	if got := nets(); got != "" {
		t.Fatalf("after isolate: %s", got)
	}
	if _, err := h.Engine.Rollback(ctx, a.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if got := nets(); got != "picket-hnet(web)" {
		t.Fatalf("after rollback: %s", got)
	}
	// The script, with no binary: disconnect, then pause.
	script := filepath.Join(t.TempDir(), "picket-emergency-stop")
	os.WriteFile(script, emergency.Script, 0o755)
	for _, how := range []string{"disconnect", "pause"} {
		p.Actions.Isolate = how
		h.SetPolicy(p)
		a, err := h.Engine.Do(ctx, actions.Request{Incident: 2, Kind: actions.IsolateContainer, Target: id, TTL: time.Hour, Reason: "test"})
		if err != nil || a.Status != actions.StatusApplied {
			t.Fatalf("%s: %+v %v", how, a, err)
		}
		if got := nets(); got == "picket-hnet(web)" {
			t.Fatalf("%s did nothing", how)
		}
		cmd := exec.Command("/bin/sh", script)
		cmd.Env = append(os.Environ(), "PICKET_STATE_DIR="+filepath.Join(dir, "state"), "DOCKER_SOCKET="+d.Socket,
			"PICKET_NFT_TABLE=picket-absent-test", "PICKET_NOLOGIN="+filepath.Join(dir, "nologin"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("script after %s: %v\n%s", how, err, out)
		}
		if got := nets(); got != "picket-hnet(web)" {
			t.Fatalf("script did not restore after %s: %s\n%s", how, got, out)
		}
		// The journal still says applied: the rollback finds the
		// container as it should be and closes the entry.
		if _, err := h.Engine.Rollback(ctx, a.ID, "after emergency stop"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFalsePositiveOverSocket: a block from a live agent, then one verdict
// over the agent's control socket rolls it back at once, and the same
// pattern no longer acts.
func TestFalsePositiveOverSocket(t *testing.T) {
	r := newHandsRig(t)
	h := r.agentBlocking(t)
	defer h.stop()
	var id int64
	for _, in := range h.incidents() {
		id = in.ID
	}
	body, _ := json.Marshal(feedback.Request{Verdict: feedback.FalsePositive, Incident: id, Note: "our monitoring host"})
	resp, err := control.Call(context.Background(), control.Path(h.dir), control.Request{Op: OpFeedback, Body: body})
	if err != nil || !resp.OK {
		t.Fatalf("feedback: %+v %v", resp, err)
	}
	if !r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("block not rolled back by the verdict")
	}
	// The same failures again: suppressed, no new action.
	h.appendLines(failures("198.18.1.2", 12, time.Now())...)
	time.Sleep(1500 * time.Millisecond)
	if !r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("the suppressed pattern was blocked again")
	}
	// Detection still acts on everything else.
	h.appendLines(failures("198.18.2.2", 6, time.Now())...)
	netnstest.Eventually(t, 10*time.Second, "another attacker was not blocked", func() bool { return !r.reach(r.c2, "198.18.2.1:7000") })
	if !r.reach(r.c1, "198.18.1.1:7000") {
		t.Fatal("the suppressed pattern was blocked again")
	}
	sups, err := mustOpen(t, h.dir).Suppressions(context.Background(), true)
	if err != nil || len(sups) == 0 || !strings.Contains(sups[0].Entity, "198.18.1.2") {
		t.Fatalf("suppressions: %+v %v", sups, err)
	}
}
