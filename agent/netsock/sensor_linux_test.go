package netsock

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/internal/integration"
)

// testNet is two network namespaces joined by a veth pair: A holds
// 198.18.<n>.1/30, B 198.18.<n>.2/30. Nothing is created in the host's
// namespace (the veth is created inside A with its peer inside B).
type testNet struct {
	ip     string
	a, b   string
	addrA  netip.Addr
	addrB  netip.Addr
	procs  []*exec.Cmd
	procMu sync.Mutex
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	integration.Root(t)
	n := &testNet{ip: integration.Binary(t, "ip")}
	id := os.Getpid() % 100000
	n.a, n.b = fmt.Sprintf("picket-ns-a-%d", id), fmt.Sprintf("picket-ns-b-%d", id)
	octet := 64 + id%128 // stay inside 198.18.0.0/15, vary per run
	n.addrA = netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", octet))
	n.addrB = netip.MustParseAddr(fmt.Sprintf("198.18.%d.2", octet))
	t.Cleanup(n.close)
	n.run(t, "netns", "add", n.a)
	n.run(t, "netns", "add", n.b)
	n.run(t, "-n", n.a, "link", "add", "pkt-a", "type", "veth", "peer", "name", "pkt-b", "netns", n.b)
	n.run(t, "-n", n.a, "addr", "add", n.addrA.String()+"/30", "dev", "pkt-a")
	n.run(t, "-n", n.b, "addr", "add", n.addrB.String()+"/30", "dev", "pkt-b")
	for _, ns := range []string{n.a, n.b} {
		for _, dev := range []string{"lo", map[string]string{n.a: "pkt-a", n.b: "pkt-b"}[ns]} {
			n.run(t, "-n", ns, "link", "set", dev, "up")
		}
	}
	return n
}

func (n *testNet) run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(n.ip, args...).CombinedOutput(); err != nil {
		integration.Skip(t, fmt.Sprintf("ip %s: %v: %s", strings.Join(args, " "), err, out))
	}
}

// start runs argv inside namespace ns (ip netns exec execs argv in place,
// so the command's pid is the process under test).
func (n *testNet) start(t *testing.T, ns string, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(n.ip, append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	n.procMu.Lock()
	n.procs = append(n.procs, cmd)
	n.procMu.Unlock()
	return cmd
}

func (n *testNet) close() {
	n.procMu.Lock()
	for _, c := range n.procs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	}
	n.procMu.Unlock()
	for _, ns := range []string{n.a, n.b} {
		_ = exec.Command(n.ip, "netns", "del", ns).Run()
	}
}

func nsInodeOf(t *testing.T, name string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// collector runs the sensor and keeps its events.
type collector struct {
	mu  sync.Mutex
	evs []event.Event
}

func (c *collector) find(pred func(*event.Event) bool) *event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.evs {
		if pred(&c.evs[i]) {
			ev := c.evs[i]
			return &ev
		}
	}
	return nil
}

func (c *collector) wait(t *testing.T, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ev := c.find(pred); ev != nil {
			return ev
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.evs {
		if ev.Net != nil && ev.Net.NetNS != 0 {
			t.Logf("seen: %s %s %+v proc=%v", ev.Kind, ev.Detail, *ev.Net, ev.Proc != nil)
		}
	}
	t.Fatalf("no event: %s", what)
	return nil
}

func runSensor(t *testing.T, s *Sensor) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Item, 64)
	c := &collector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case it := <-out:
				c.mu.Lock()
				c.evs = append(c.evs, *it.Event)
				c.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := <-errc; err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
	})
	// The first poll is the inventory; what the test starts after it is new.
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Polls == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func TestSensorNamespaces(t *testing.T) {
	n := newTestNet(t)
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = integration.Binary(t, "python3")
	}
	curl := integration.Binary(t, "curl")

	// The served directory holds a file big enough that rate-limited
	// downloads stay connected across several polls.
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "big"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A database server by name: curl copied as "mariadbd", so comm and
	// the executable's base name are both mariadbd.
	bin := t.TempDir()
	mariadbd := filepath.Join(bin, "mariadbd")
	data, err := os.ReadFile(curl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mariadbd, data, 0o755); err != nil {
		t.Fatal(err)
	}

	s := New(Options{Interval: 100 * time.Millisecond})
	c := runSensor(t, s)
	nsA, nsB := nsInodeOf(t, n.a), nsInodeOf(t, n.b)
	det := NewDetector(DefaultDetectorOptions())

	srv := n.start(t, n.a, www, py, "-m", "http.server", "9090", "--bind", n.addrA.String())
	lst := c.wait(t, "listener 9090 in namespace A", func(ev *event.Event) bool {
		return ev.Kind == event.NetListen && ev.Net.LPort == 9090 && ev.Net.NetNS == nsA
	})
	if lst.Detail != "" || lst.Proc == nil || lst.Proc.PID != srv.Process.Pid || !strings.HasPrefix(filepath.Base(lst.Proc.Exe), "python3") ||
		lst.Net.Local != n.addrA || lst.Net.Proto != TCP {
		t.Fatalf("listener event: %+v net %+v proc %+v", lst, lst.Net, lst.Proc)
	}
	var sigs []signal.Signal
	det.Observe(lst, func(s signal.Signal) { sigs = append(sigs, s) })
	if len(sigs) != 1 || sigs[0].Rule != RuleNewListener || sigs[0].Stage != signal.Persistence {
		t.Fatalf("new listener signals: %+v", sigs)
	}
	t.Logf("%s: %s", sigs[0].Rule, sigs[0].Reason)

	// A client in B, rate-limited so the connection lasts.
	cl := n.start(t, n.b, www, curl, "-s", "-o", "/dev/null", "--limit-rate", "20k",
		fmt.Sprintf("http://%s:9090/big", n.addrA))
	conn := c.wait(t, "curl's connection from B", func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Net.NetNS == nsB && ev.Net.RPort == 9090 && ev.Proc != nil && ev.Proc.PID == cl.Process.Pid
	})
	if conn.Net.Remote != n.addrA || conn.Net.Local != n.addrB || conn.Addr != n.addrA || conn.Port != 9090 || conn.Proc.Comm != "curl" {
		t.Fatalf("connect event: %+v net %+v proc %+v", conn, conn.Net, conn.Proc)
	}
	// The server's side of that connection is inbound: never a NetConnect.
	if ev := c.find(func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Net.NetNS == nsA && ev.Net.LPort == 9090
	}); ev != nil {
		t.Fatalf("accepted connection reported as outbound: %+v", ev.Net)
	}

	// mariadbd in B connecting to A: a "non-private" destination.
	db := n.start(t, n.b, www, mariadbd, "-s", "-o", "/dev/null", "--limit-rate", "20k",
		fmt.Sprintf("http://%s:9090/big", n.addrA))
	dbConn := c.wait(t, "mariadbd's connection", func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Proc != nil && ev.Proc.PID == db.Process.Pid
	})
	if dbConn.Proc.Comm != "mariadbd" || dbConn.Proc.Exe != mariadbd {
		t.Fatalf("mariadbd process: %+v", dbConn.Proc)
	}
	sigs = nil
	det.Observe(dbConn, func(s signal.Signal) { sigs = append(sigs, s) })
	if len(sigs) != 1 || sigs[0].Rule != RuleDBEgress || sigs[0].Stage != signal.Exfiltration || sigs[0].Weight != 60 {
		t.Fatalf("db egress signals: %+v", sigs)
	}
	t.Logf("%s: %s", sigs[0].Rule, sigs[0].Reason)

	// mariadbd over loopback (a listener on 127.0.0.1 in B) is not egress.
	n.start(t, n.b, www, py, "-m", "http.server", "9091", "--bind", "127.0.0.1")
	c.wait(t, "loopback listener in B", func(ev *event.Event) bool {
		return ev.Kind == event.NetListen && ev.Net.LPort == 9091 && ev.Net.NetNS == nsB
	})
	lo := n.start(t, n.b, www, mariadbd, "-s", "-o", "/dev/null", "--limit-rate", "20k", "http://127.0.0.1:9091/big")
	loConn := c.wait(t, "mariadbd's loopback connection", func(ev *event.Event) bool {
		return ev.Kind == event.NetConnect && ev.Proc != nil && ev.Proc.PID == lo.Process.Pid
	})
	if loConn.Net.Remote != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("loopback connection: %+v", loConn.Net)
	}
	sigs = nil
	det.Observe(loConn, func(s signal.Signal) { sigs = append(sigs, s) })
	if len(sigs) != 0 {
		t.Fatalf("loopback connection raised %+v", sigs)
	}

	// Closing the listener is reported with the process that had it.
	_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
	un := c.wait(t, "listener 9090 closed", func(ev *event.Event) bool {
		return ev.Kind == event.NetUnlisten && ev.Net.LPort == 9090 && ev.Net.NetNS == nsA
	})
	if un.Proc == nil || un.Proc.PID != srv.Process.Pid {
		t.Fatalf("unlisten event process: %+v", un.Proc)
	}
	if degraded, detail := s.Live(); detail == "" || strings.Contains(detail, "failed") {
		t.Fatalf("Live: %v %q", degraded, detail)
	} else {
		t.Logf("Live: degraded=%v %s", degraded, detail)
	}
}

// BenchmarkPoll is the steady-state cost of one poll of this host (every
// namespace's tables, no new sockets: no fd walk).
func BenchmarkPoll(b *testing.B) {
	s := New(Options{})
	if _, err := s.Poll(time.Now()); err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Poll(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats()
	b.ReportMetric(float64(st.Namespaces), "namespaces")
	b.ReportMetric(float64(st.Listeners+st.Connections), "sockets")
}
