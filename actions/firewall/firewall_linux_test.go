package firewall

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/netnstest"
)

const (
	c1     = "198.18.1.2"
	c1Also = "198.18.1.3" // second address of C1: "another client" and admin
	c2     = "198.18.2.2"
	c3     = "198.18.3.2"
	sOnC1  = "198.18.1.1:8080"
	sOnC2  = "198.18.2.1:8080"
)

func host(a string) netip.Prefix {
	return netip.PrefixFrom(netip.MustParseAddr(a), netip.MustParseAddr(a).BitLen())
}

func works(t *testing.T, n *netns, src, dst string) {
	t.Helper()
	if err := n.Dial(src, dst); err != nil {
		t.Fatalf("%s from %q to %s should work: %v", n.Name, src, dst, err)
	}
}

func fails(t *testing.T, n *netns, src, dst string) {
	t.Helper()
	if err := n.Dial(src, dst); err == nil {
		t.Fatalf("%s from %q to %s should fail", n.Name, src, dst)
	}
}

func ruleset(t testing.TB, n *netns) string { return n.Exec(t, "nft", "list", "ruleset") }

func TestBlockExpiresInKernel(t *testing.T) {
	tp := newTopo(t)
	// A foreign table that accepts everything before us: our drop still wins.
	tp.s.Exec(t, "nft", "add table inet other\nadd chain inet other input { type filter hook input priority -100; policy accept; }\nadd rule inet other input accept")
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")
	works(t, tp.c1, c1, sOnC1)

	if err := f.Block(host(c1), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	blockedAt := time.Now()
	fails(t, tp.c1, c1, sOnC1)
	works(t, tp.c1, c1Also, sOnC1)
	works(t, tp.c2, c2, sOnC2)
	st, err := f.List()
	if err != nil || len(st.Blocked) != 1 || st.Blocked[0].Prefix != host(c1) || st.Blocked[0].Timeout != 3*time.Second {
		t.Fatalf("list: %+v %v", st.Blocked, err)
	}
	if left := time.Until(st.Blocked[0].Expires); left < 2*time.Second || left > 3*time.Second {
		t.Fatalf("expires in %s", left)
	}

	// No call from here on: the kernel ends the block.
	eventually(t, 6*time.Second, "the block should expire", func() bool { return tp.c1.Dial(c1, sOnC1) == nil })
	if took := time.Since(blockedAt); took < 2500*time.Millisecond {
		t.Fatalf("block ended after %s, before its TTL", took)
	}
	if out := tp.s.Exec(t, "nft", "list", "set", "inet", "picket", "block4"); strings.Contains(out, c1) {
		t.Fatalf("element still listed:\n%s", out)
	}

	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := tp.s.Exec(t, "nft", "list", "tables"); strings.Contains(out, "picket") || !strings.Contains(out, "other") {
		t.Fatalf("Remove must delete our table only:\n%s", out)
	}
}

func TestBlockCIDRAndUnblock(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")

	if err := f.Block(pfx("198.18.1.77/24"), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, c1, sOnC1)
	fails(t, tp.c1, c1Also, sOnC1)
	works(t, tp.c2, c2, sOnC2)
	st, err := f.List()
	if err != nil || len(st.Blocked) != 1 || st.Blocked[0].Prefix != pfx("198.18.1.0/24") {
		t.Fatalf("list: %+v %v", st.Blocked, err)
	}
	// An address inside a CIDR in force cannot be a second element.
	if err := f.Block(host(c1), time.Minute); !errors.Is(err, ErrOverlap) {
		t.Fatalf("overlapping block: %v", err)
	}
	if err := f.Unblock(pfx("198.18.1.0/24")); err != nil {
		t.Fatal(err)
	}
	works(t, tp.c1, c1, sOnC1)
	if err := f.Unblock(pfx("198.18.1.0/24")); err != nil {
		t.Fatalf("second unblock: %v", err)
	}
}

func TestBlockIPv6(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")
	const s6 = "[2001:db8:1::1]:8080"
	works(t, tp.c1, "2001:db8:1::2", s6)

	if err := f.Block(pfx("2001:db8:1::2/128"), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, "2001:db8:1::2", s6)
	works(t, tp.c1, c1, sOnC1) // the same host over IPv4 is another source
	st, err := f.List()
	if err != nil || len(st.Blocked) != 1 || st.Blocked[0].Prefix != pfx("2001:db8:1::2/128") {
		t.Fatalf("list: %+v %v", st.Blocked, err)
	}
	if err := f.Unblock(pfx("2001:db8:1::2/128")); err != nil {
		t.Fatal(err)
	}
	works(t, tp.c1, "2001:db8:1::2", s6)
}

// Traffic routed through S (as Docker-published ports are after DNAT)
// crosses forward, not input.
func TestBlockForwarded(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.c2.Serve(t, ":9000")
	const c2svc = c2 + ":9000"
	works(t, tp.c3, c3, c2svc)
	works(t, tp.c1, c1, c2svc)

	if err := f.Block(host(c3), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c3, c3, c2svc)
	works(t, tp.c1, c1, c2svc)

	if err := f.BlockOutbound(host(c2), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, c1, c2svc)
	if err := f.UnblockOutbound(host(c2)); err != nil {
		t.Fatal(err)
	}
	if err := f.Unblock(host(c3)); err != nil {
		t.Fatal(err)
	}
	works(t, tp.c3, c3, c2svc)
	works(t, tp.c1, c1, c2svc)
}

func TestBlockOutbound(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.c1.Serve(t, ":9000")
	tp.c2.Serve(t, ":9000")

	if err := f.BlockOutbound(host(c1), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.s, "", c1+":9000")
	works(t, tp.s, "", c2+":9000")
	st, err := f.List()
	if err != nil || len(st.Outbound) != 1 || st.Outbound[0].Prefix != host(c1) || len(st.Blocked) != 0 {
		t.Fatalf("list: %+v %v", st, err)
	}
	if err := f.UnblockOutbound(host(c1)); err != nil {
		t.Fatal(err)
	}
	works(t, tp.s, "", c1+":9000")
}

// dialBurst opens n connections at once and counts those that worked.
func dialBurst(n *netns, src, dst string, count int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.Dial(src, dst) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

func TestRateLimitPerSource(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{RatePerSecond: 1})
	tp.s.Serve(t, ":8080")

	if err := f.RateLimit(host(c1), time.Minute); err != nil {
		t.Fatal(err)
	}
	// A burst of 12 new connections: the bucket (burst 1, 1/s) lets one or
	// two through; the dropped SYNs are not retried within the timeout.
	if got := dialBurst(tp.c1, c1, sOnC1, 12); got < 1 || got > 3 {
		t.Fatalf("rate-limited source: %d of 12 connections worked", got)
	}
	if got := dialBurst(tp.c1, c1Also, sOnC1, 12); got != 12 {
		t.Fatalf("other source: %d of 12 connections worked", got)
	}
	if out := tp.s.Exec(t, "nft", "list", "set", "inet", "picket", "meter4"); !strings.Contains(out, c1) || strings.Contains(out, c1Also) {
		t.Fatalf("meter should hold the limited source only:\n%s", out)
	}
	if err := f.Unlimit(host(c1)); err != nil {
		t.Fatal(err)
	}
	if got := dialBurst(tp.c1, c1, sOnC1, 12); got != 12 {
		t.Fatalf("after Unlimit: %d of 12 connections worked", got)
	}
}

func TestPauseSSH(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":2222")
	tp.s.Serve(t, ":8080")
	const ssh = "198.18.1.1:2222"
	if err := f.SetAdmin([]netip.Prefix{host(c1Also)}); err != nil {
		t.Fatal(err)
	}
	session, err := tp.c1.Open(c1, ssh, dialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	if err := f.PauseSSH([]uint16{2222}, time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, c1, ssh)
	works(t, tp.c1, c1Also, ssh) // admin
	works(t, tp.c1, c1, sOnC1)   // other ports
	if err := netnstest.Echo(session, dialTimeout); err != nil {
		t.Fatalf("established session cut: %v", err)
	}
	st, err := f.List()
	if err != nil || len(st.SSHPaused) != 1 || st.SSHPaused[0].Port != 2222 || len(st.Admin) != 1 || st.Admin[0] != host(c1Also) {
		t.Fatalf("list: %+v %v", st, err)
	}
	if err := f.ResumeSSH([]uint16{2222, 22}); err != nil {
		t.Fatal(err)
	}
	works(t, tp.c1, c1, ssh)
	if err := f.ResumeSSH([]uint16{2222}); err != nil {
		t.Fatalf("second resume: %v", err)
	}
}

type containSetup struct {
	tp                *topo
	f                 *Firewall
	snapshot          string
	inbound, outbound interface {
		Close() error
	}
	checkEstablished func(t *testing.T)
}

const sshPort = "198.18.1.1:2222"

// containmentSetup: services on S (8080, "ssh" 2222), C1 and C2 (9000); the
// admin is C1's second address; two connections opened before Contain.
func containmentSetup(t *testing.T) *containSetup {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")
	tp.s.Serve(t, ":2222")
	tp.c1.Serve(t, ":9000")
	tp.c2.Serve(t, ":9000")
	if err := f.SetAdmin([]netip.Prefix{host(c1Also)}); err != nil {
		t.Fatal(err)
	}
	snapshot := ruleset(t, tp.s)
	in, err := tp.c1.Open(c1, sshPort, dialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	out, err := tp.s.Open("", c1+":9000", dialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cs := &containSetup{tp: tp, f: f, snapshot: snapshot}
	cs.checkEstablished = func(t *testing.T) {
		t.Helper()
		if err := netnstest.Echo(in, dialTimeout); err != nil {
			t.Fatalf("established inbound ssh session cut: %v", err)
		}
		if err := netnstest.Echo(out, dialTimeout); err != nil {
			t.Fatalf("established outbound connection cut: %v", err)
		}
	}
	if err := f.Contain(Containment{Allow: []netip.Prefix{host(c2)}, SSHPorts: []uint16{2222}}, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	return cs
}

func (cs *containSetup) checkContained(t *testing.T) {
	t.Helper()
	tp := cs.tp
	works(t, tp.s, "", c2+":9000") // whitelisted
	fails(t, tp.s, "", c1+":9000") // anything else
	fails(t, tp.c1, c1, sshPort)   // new ssh, not admin
	works(t, tp.c1, c1Also, sshPort)
	works(t, tp.c2, c2, sOnC2) // new inbound, under the rate
	cs.checkEstablished(t)
}

func (cs *containSetup) checkFree(t *testing.T) {
	t.Helper()
	works(t, cs.tp.s, "", c1+":9000")
	works(t, cs.tp.c1, c1, sshPort)
	cs.checkEstablished(t)
}

func TestContainmentUncontain(t *testing.T) {
	cs := containmentSetup(t)
	cs.checkContained(t)
	st, err := cs.f.List()
	c := st.Containment
	if err != nil || !c.Active || len(c.Allow) != 1 || c.Allow[0].Prefix != host(c2) || len(c.SSHPorts) != 1 || c.SSHPorts[0].Port != 2222 {
		t.Fatalf("list: %+v %v", c, err)
	}
	if left := time.Until(c.Until); left <= 0 || left > 3*time.Second {
		t.Fatalf("containment until in %s", left)
	}
	if err := cs.f.Uncontain(); err != nil {
		t.Fatal(err)
	}
	cs.checkFree(t)
	if got := ruleset(t, cs.tp.s); got != cs.snapshot {
		t.Fatalf("ruleset after Uncontain differs from before Contain:\n--- before\n%s\n--- after\n%s", cs.snapshot, got)
	}
	if err := cs.f.Uncontain(); err != nil {
		t.Fatalf("second uncontain: %v", err)
	}
}

func TestContainmentExpiresInKernel(t *testing.T) {
	cs := containmentSetup(t)
	cs.checkContained(t)
	// No call from here on.
	eventually(t, 6*time.Second, "containment should expire", func() bool { return cs.tp.s.Dial("", c1+":9000") == nil })
	cs.checkFree(t)
	// The per-source buckets containment filled expire on their own too.
	eventually(t, 10*time.Second, "ruleset should return to the snapshot", func() bool { return ruleset(t, cs.tp.s) == cs.snapshot })
	st, err := cs.f.List()
	if err != nil || st.Containment.Active || len(st.Containment.Allow) != 0 {
		t.Fatalf("list after expiry: %+v %v", st.Containment, err)
	}
}

func TestWatchFlushRuleset(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")
	changes := make(chan struct{}, 16)
	subscribed := make(chan struct{}, 4)
	f.watching = func() { subscribed <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Watch(ctx, func() { changes <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	<-subscribed
	expectChange := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(3 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
		for len(changes) > 0 { // one batch may report once per event batch
			<-changes
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("change reported after our own %s", what)
		case <-time.After(500 * time.Millisecond):
		}
	}

	if err := f.Block(host(c1), time.Minute); err != nil {
		t.Fatal(err)
	}
	quiet("block")
	tp.s.Exec(t, "nft", "flush", "ruleset")
	expectChange("nft flush ruleset")
	if ok, err := f.Present(); ok || err != nil {
		t.Fatalf("present after flush: %v %v", ok, err)
	}
	works(t, tp.c1, c1, sOnC1)
	if err := f.Block(host(c1), time.Minute); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("block without table: %v", err)
	}
	if err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := f.Block(host(c1), time.Minute); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, c1, sOnC1)
	quiet("ensure and block")
	// 20,000 element notifications of our own: no overrun, nothing reported.
	if err := f.BlockMany(addresses(10000), time.Minute); err != nil {
		t.Fatal(err)
	}
	quiet("block of 10,000")

	// Someone edits our table: an accept inserted before our drops.
	tp.s.Exec(t, "nft", "insert", "rule", "inet", "picket", "input", "accept")
	expectChange("a foreign rule")
	works(t, tp.c1, c1, sOnC1)
	if ok, _ := f.Present(); ok {
		t.Fatal("an edited table is not whole")
	}
	if err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	fails(t, tp.c1, c1, sOnC1) // the block survived the repair

	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	quiet("remove")
}

func TestEnsureRepairs(t *testing.T) {
	tp := newTopo(t)
	f := tp.firewall(t, Options{})
	tp.s.Serve(t, ":8080")
	if err := f.Block(host(c1), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, cmd string }{
		{"rules flushed", "flush chain inet picket input"},
		{"foreign rule", "add rule inet picket forward accept"},
		{"foreign chain", "add chain inet picket extra"},
		{"chain deleted", "flush chain inet picket output\ndelete chain inet picket output"},
		{"base chain policy changed", "add chain inet picket input { type filter hook input priority -10; policy drop; }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp.s.Exec(t, "nft", tc.cmd)
			if ok, err := f.Present(); ok || err != nil {
				t.Fatalf("present: %v %v", ok, err)
			}
			if err := f.Ensure(); err != nil {
				t.Fatal(err)
			}
			if ok, err := f.Present(); !ok || err != nil {
				t.Fatalf("present after repair: %v %v\n%s", ok, err, ruleset(t, tp.s))
			}
			fails(t, tp.c1, c1, sOnC1)
			works(t, tp.c2, c2, sOnC2)
		})
	}
}

func TestIdempotent(t *testing.T) {
	n := newNetns(t, "idem")
	f := firewallIn(t, n, Options{Table: "picket_idem"})
	if changed, err := f.ensure(); changed || err != nil {
		t.Fatalf("second ensure changed=%v err=%v", changed, err)
	}
	before := ruleset(t, n)
	if err := f.Ensure(); err != nil || ruleset(t, n) != before {
		t.Fatalf("third ensure: %v", err)
	}

	p := host("198.18.9.9")
	if err := f.Block(p, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first := mustList(t, f).Blocked
	time.Sleep(1200 * time.Millisecond)
	if err := f.Block(p, 10*time.Second); err != nil {
		t.Fatalf("block again: %v", err)
	}
	second := mustList(t, f).Blocked
	if len(first) != 1 || len(second) != 1 || second[0].Expires.Sub(first[0].Expires) < time.Second {
		t.Fatalf("block again should refresh the timeout: %+v then %+v", first, second)
	}
	if err := f.PauseSSH([]uint16{22, 22}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.PauseSSH([]uint16{22}, 20*time.Second); err != nil {
		t.Fatalf("pause again: %v", err)
	}
	if ps := mustList(t, f).SSHPaused; len(ps) != 1 || ps[0].Timeout != 20*time.Second {
		t.Fatalf("paused: %+v", ps)
	}
	for name, op := range map[string]func() error{
		"unblock missing":          func() error { return f.Unblock(host("198.18.9.10")) },
		"unblock outbound missing": func() error { return f.UnblockOutbound(host("2001:db8::9")) },
		"unlimit missing":          func() error { return f.Unlimit(pfx("198.18.0.0/16")) },
		"resume missing":           func() error { return f.ResumeSSH([]uint16{2222}) },
		"uncontain":                f.Uncontain,
	} {
		if err := op(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := f.Block(p, 0); !errors.Is(err, ErrTTL) {
		t.Errorf("block without ttl: %v", err)
	}
	if err := f.Block(pfx("0.0.0.0/0"), time.Minute); !errors.Is(err, ErrPrefix) {
		t.Errorf("block of everything: %v", err)
	}

	for range 2 {
		if err := f.Remove(); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	if ok, err := f.Present(); ok || err != nil {
		t.Fatalf("present after remove: %v %v", ok, err)
	}
	if st, err := f.List(); err != nil || st.Present {
		t.Fatalf("list after remove: %+v %v", st, err)
	}
	for name, op := range map[string]func() error{
		"unblock":   func() error { return f.Unblock(p) },
		"uncontain": f.Uncontain,
		"resume":    func() error { return f.ResumeSSH([]uint16{22}) },
	} {
		if err := op(); err != nil {
			t.Errorf("%s without table: %v", name, err)
		}
	}
	for name, op := range map[string]func() error{
		"block":    func() error { return f.Block(p, time.Minute) },
		"contain":  func() error { return f.Contain(Containment{}, time.Minute) },
		"admin":    func() error { return f.SetAdmin(nil) },
		"pause":    func() error { return f.PauseSSH([]uint16{22}, time.Minute) },
		"outbound": func() error { return f.BlockOutbound(p, time.Minute) },
	} {
		if err := op(); !errors.Is(err, ErrNotPresent) {
			t.Errorf("%s without table: %v, want ErrNotPresent", name, err)
		}
	}
	if out := ruleset(t, n); strings.Contains(out, "picket_idem") {
		t.Fatalf("table left behind:\n%s", out)
	}
}

func mustList(t *testing.T, f *Firewall) State {
	t.Helper()
	st, err := f.List()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestBlockManyChunksAndOverlaps(t *testing.T) {
	n := newNetns(t, "many")
	f := firewallIn(t, n, Options{Chunk: 300})
	ps := addresses(2000)
	if err := f.Block(pfx("198.18.100.0/24"), time.Minute); err != nil { // inside ps' range
		t.Fatal(err)
	}
	err := f.BlockMany(ps, time.Minute)
	if !errors.Is(err, ErrOverlap) {
		t.Fatalf("BlockMany over a CIDR in force: %v", err)
	}
	st := mustList(t, f)
	if len(st.Blocked) != 2000-256+1 {
		t.Fatalf("%d elements in force, want %d", len(st.Blocked), 2000-256+1)
	}
	// Everything again: all refreshed (delete and add) in chunks.
	if err := f.Unblock(pfx("198.18.100.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := f.BlockMany(ps, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	st = mustList(t, f)
	if len(st.Blocked) != 2000 {
		t.Fatalf("%d elements in force, want 2000", len(st.Blocked))
	}
	for _, e := range st.Blocked {
		if e.Timeout != 2*time.Minute {
			t.Fatalf("%s not refreshed: %s", e.Prefix, e.Timeout)
		}
	}
}

// addresses gives n consecutive host prefixes from 198.18.96.0 (adjacent
// intervals share keys: the worst case for an interval set).
func addresses(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	a := netip.MustParseAddr("198.18.96.0")
	for range n {
		out = append(out, netip.PrefixFrom(a, 32))
		a = a.Next()
	}
	return out
}

// The largest batch there is: IPv6 prefixes at MaxChunk, refreshed (a
// delete and an add message of 800 prefixes each in one batch).
func TestBlockManyIPv6MaxChunk(t *testing.T) {
	n := newNetns(t, "many6")
	f := firewallIn(t, n, Options{Chunk: 10 * MaxChunk})
	ps := make([]netip.Prefix, 0, 3000)
	a := netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:f000")
	for range 3000 {
		ps = append(ps, netip.PrefixFrom(a, 128))
		a = a.Next()
	}
	for _, ttl := range []time.Duration{time.Minute, 2 * time.Minute} {
		if err := f.BlockMany(ps, ttl); err != nil {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
		st := mustList(t, f)
		if len(st.Blocked) != len(ps) || st.Blocked[0].Timeout != ttl {
			t.Fatalf("ttl %s: %d blocked", ttl, len(st.Blocked))
		}
	}
}
