package netsock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/internal/integration"
)

// track makes conntrack active in ns: the test's setup, never the code's.
func (n *testNet) track(t *testing.T, ns string) {
	t.Helper()
	nft := integration.Binary(t, "nft")
	if out, err := exec.Command(n.ip, "netns", "exec", ns, nft,
		"add table inet t; add chain inet t c { type filter hook output priority 0; }; add rule inet t c ct state new counter").CombinedOutput(); err != nil {
		integration.Skip(t, fmt.Sprintf("nft in %s: %v: %s", ns, err, out))
	}
}

// ctSensor runs a sensor whose poll is too slow to see anything the test
// does: only conntrack can. It returns once namespace ns is listened to.
func ctSensor(t *testing.T, ns uint64) (*Sensor, *collector) {
	t.Helper()
	s := New(Options{Interval: time.Minute, Conntrack: true, NetNSDirs: []string{"/run/netns"}})
	c := runSensor(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		m := s.ct
		s.mu.Unlock()
		if m != nil {
			m.mu.Lock()
			cl := m.listeners[ns]
			m.mu.Unlock()
			if cl != nil && cl.l.Stats().Running {
				return s, c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no conntrack listener in namespace %d: %+v", ns, s.Stats().Conntrack)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func python(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return integration.Binary(t, "python3")
}

// server starts a TCP accept loop in B that reads each connection to EOF.
func (n *testNet) server(t *testing.T, py string, port int) {
	n.start(t, n.b, t.TempDir(), py, "-c", fmt.Sprintf(`
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("%s", %d)); s.listen(64)
def drain(c):
    while c.recv(4096): pass
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=drain, args=(c,), daemon=True).start()
`, n.addrB, port))
	// Wait until it accepts (probing from B itself: no conntrack in B).
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command(n.ip, "netns", "exec", n.b, py, "-c",
		fmt.Sprintf(`import socket; socket.create_connection(("%s", %d), timeout=1).close()`, n.addrB, port)).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("server in B does not accept")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConntrackShortConnections(t *testing.T) {
	n := newTestNet(t)
	py := python(t)
	n.track(t, n.a)
	nsA := nsInodeOf(t, n.a)
	n.server(t, py, 8080)
	s, c := ctSensor(t, nsA)

	// A connection of 200 ms, under a 1-minute poll.
	cl := n.start(t, n.a, t.TempDir(), py, "-c", fmt.Sprintf(`
import socket, time
s = socket.create_connection(("%s", 8080), timeout=2); time.sleep(0.2); s.close()`, n.addrB))
	ev := c.wait(t, "conntrack event of the short connection", func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Source == SourceConntrack && ev.Net.NetNS == nsA && ev.Net.RPort == 8080
	})
	if ev.Net.Proto != TCP || ev.Net.Remote != n.addrB || ev.Net.Local != n.addrA || ev.Addr != n.addrB || ev.Port != 8080 {
		t.Fatalf("event %+v net %+v", ev, ev.Net)
	}
	if ev.Proc == nil || ev.Proc.PID != cl.Process.Pid || !strings.HasPrefix(filepath.Base(ev.Proc.Exe), "python3") || ev.Detail != "" {
		t.Fatalf("process of the connection: %+v detail %q", ev.Proc, ev.Detail)
	}
	t.Logf("tied: %s(%d) %s → %s:%d", ev.Proc.Comm, ev.Proc.PID, ev.Proc.Exe, ev.Net.Remote, ev.Net.RPort)
	_ = cl.Wait()

	// A DNS-like single datagram, the process gone at once.
	if out, err := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", fmt.Sprintf(`
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", ("%s", 53))`, n.addrB)).CombinedOutput(); err != nil {
		t.Fatalf("udp client: %v %s", err, out)
	}
	u := c.wait(t, "conntrack event of the datagram", func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Source == SourceConntrack && ev.Net.NetNS == nsA && ev.Net.RPort == 53
	})
	if u.Net.Proto != UDP || u.Net.Remote != n.addrB || (u.Proc == nil && u.Detail == "") {
		t.Fatalf("udp event %+v net %+v", u, u.Net)
	}
	t.Logf("udp: proc=%v detail=%q", u.Proc != nil, u.Detail)
	d, live := s.Live()
	if d || !strings.Contains(live, "conntrack NEW events in") {
		t.Fatalf("Live: %v %s", d, live)
	}
	t.Logf("Live: %s", live)
}

// TestConntrackScan: 30 connections to closed ports, each over in a
// millisecond; only conntrack sees them, and the scan rule fires.
func TestConntrackScan(t *testing.T) {
	n := newTestNet(t)
	py := python(t)
	n.track(t, n.a)
	nsA := nsInodeOf(t, n.a)
	_, c := ctSensor(t, nsA)
	if out, err := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", fmt.Sprintf(`
import socket
for port in range(2000, 2030):
    s = socket.socket()
    s.settimeout(1)
    try: s.connect(("%s", port))
    except OSError: pass
    s.close()`, n.addrB)).CombinedOutput(); err != nil {
		t.Fatalf("scanner: %v %s", err, out)
	}
	det := NewDetector(DefaultDetectorOptions())
	var sigs []signal.Signal
	deadline := time.Now().Add(10 * time.Second)
	seen := map[int]bool{}
	for len(seen) < 30 && time.Now().Before(deadline) {
		c.mu.Lock()
		evs := append([]event.Event(nil), c.evs...)
		c.mu.Unlock()
		for i := range evs {
			if ev := &evs[i]; ev.Source == SourceConntrack && ev.Net.NetNS == nsA && ev.Net.RPort >= 2000 && ev.Net.RPort < 2030 && !seen[ev.Net.RPort] {
				seen[ev.Net.RPort] = true
				det.Observe(ev, func(s signal.Signal) { sigs = append(sigs, s) })
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) != 30 {
		t.Fatalf("%d of 30 connections seen", len(seen))
	}
	if len(sigs) == 0 || sigs[0].Rule != RuleOutboundScan || sigs[0].Stage != signal.Recon {
		t.Fatalf("signals: %+v", sigs)
	}
	t.Logf("%s: %s", sigs[0].Rule, sigs[0].Reason)
}

// TestConntrackInactive: in a namespace where nothing registered
// conntrack's hooks, the listener runs, reports nothing, and Live says why.
func TestConntrackInactive(t *testing.T) {
	n := newTestNet(t)
	py := python(t)
	nsA := nsInodeOf(t, n.a)
	n.server(t, py, 8080)
	s, c := ctSensor(t, nsA)
	if out, err := exec.Command(n.ip, "netns", "exec", n.a, py, "-c",
		fmt.Sprintf(`import socket; socket.create_connection(("%s", 8080), timeout=2).close()`, n.addrB)).CombinedOutput(); err != nil {
		t.Fatalf("client: %v %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	if ev := c.find(func(ev *event.Event) bool { return ev.Source == SourceConntrack && ev.Net.NetNS == nsA }); ev != nil {
		t.Fatalf("conntrack event without hooks: %+v", ev.Net)
	}
	_, live := s.Live()
	if !strings.Contains(live, "conntrack not active in") || !strings.Contains(live, fmt.Sprint(nsA)) {
		t.Fatalf("Live: %s", live)
	}
	t.Logf("Live: %s", live)
}

// TestConntrackUnprivileged runs the sensor as nobody (a child process of
// the test binary): it polls, and Live says why conntrack is off.
func TestConntrackUnprivileged(t *testing.T) {
	if os.Getenv("PICKET_NETSOCK_UNPRIV_CHILD") == "1" {
		s := New(Options{Interval: 100 * time.Millisecond, Conntrack: true})
		runSensor(t, s)
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Conntrack.HostUnavailable == "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		d, live := s.Live()
		fmt.Printf("DEGRADED=%v\nLIVE=%s\n", d, live)
		return
	}
	integration.Root(t)
	dir, err := os.MkdirTemp("", "picket-netsock-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/netsock.test"
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestConntrackUnprivileged$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PICKET_NETSOCK_UNPRIV_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "DEGRADED=true") || !strings.Contains(string(out), "conntrack unavailable: no permission") {
		t.Fatalf("child output:\n%s", out)
	}
	t.Logf("%s", out)
}
