//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// listen runs a Listener on namespace ns and returns its flows' channel.
func listen(t testing.TB, ns string, opts Options) (*Listener, chan Flow) {
	t.Helper()
	opts.NSPath = "/run/netns/" + ns
	opts.NetNS = nsInodeOf(t, ns)
	l := New(opts)
	out := make(chan Flow, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "listener running", func() bool { return l.Stats().Running })
	return l, out
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nextFlow(t *testing.T, out chan Flow, pred func(Flow) bool) Flow {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-out:
			if pred(f) {
				return f
			}
			t.Logf("other flow: %+v", f)
		case <-timeout:
			t.Fatal("no matching flow")
		}
	}
}

func TestListenerFlows(t *testing.T) {
	n := newTestNet(t, "f")
	py := integration.Binary(t, "python3")
	n.track(t, n.a)
	n.track(t, n.b)
	l, out := listen(t, n.a, Options{})
	st := l.Stats()
	if st.LocalAddrs < 2 || st.ReadBuffer < DefaultReadBuffer || st.Unavailable != "" {
		t.Fatalf("stats at start: %+v", st)
	}
	// A server in B; a TCP connect from A (short: well under a poll) and a
	// single UDP datagram from A.
	n.start(t, n.b, py, "-c", fmt.Sprintf(`
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("%s", 8080)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()
`, n.addrB))
	time.Sleep(300 * time.Millisecond)
	cl := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", fmt.Sprintf(`
import socket, time
for i in range(50):
    try:
        socket.create_connection(("%s", 8080), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", ("%s", 53))
`, n.addrB, n.addrB))
	if out, err := cl.CombinedOutput(); err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}
	tcp := nextFlow(t, out, func(f Flow) bool { return f.Proto == "tcp" })
	if tcp.Src.Addr() != n.addrA || tcp.Dst.Addr() != n.addrB || tcp.Dst.Port() != 8080 || tcp.Src.Port() == 0 ||
		tcp.Dir != Outbound || tcp.NetNS != nsInodeOf(t, n.a) || tcp.Time.IsZero() {
		t.Fatalf("tcp flow: %+v", tcp)
	}
	udp := nextFlow(t, out, func(f Flow) bool { return f.Proto == "udp" })
	if udp.Src.Addr() != n.addrA || udp.Dst != netipAddrPort(n.addrB.String(), 53) || udp.Dir != Outbound {
		t.Fatalf("udp flow: %+v", udp)
	}

	// Inbound (B connects to A) and loopback flows are counted, not sent.
	n.start(t, n.a, py, "-c", fmt.Sprintf(`
import socket
s = socket.socket(); s.bind(("0.0.0.0", 9090)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()
`))
	time.Sleep(300 * time.Millisecond)
	in := exec.Command(n.ip, "netns", "exec", n.b, py, "-c", fmt.Sprintf(`
import socket, time
for i in range(50):
    try:
        socket.create_connection(("%s", 9090), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
`, n.addrA))
	if o, err := in.CombinedOutput(); err != nil {
		t.Fatalf("inbound client: %v: %s", err, o)
	}
	lo := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", `
import socket
socket.create_connection(("127.0.0.1", 9090), timeout=1).close()`)
	if o, err := lo.CombinedOutput(); err != nil {
		t.Fatalf("loopback client: %v: %s", err, o)
	}
	waitFor(t, "inbound and loopback counted", func() bool { st := l.Stats(); return st.Inbound >= 1 && st.Loopback >= 1 })
	select {
	case f := <-out:
		t.Fatalf("unexpected flow sent: %+v", f)
	case <-time.After(200 * time.Millisecond):
	}
	st = l.Stats()
	if st.Outbound != 2 || st.Sent != 2 || st.Dropped != 0 || st.Inactive != "" || st.Tracked < 0 {
		t.Fatalf("stats: %+v", st)
	}
	t.Logf("stats: %s", st.Describe())
}

func netipAddrPort(a string, p uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(a), p)
}

// TestListenerInactive: a namespace where nothing registered conntrack's
// hooks. The listener runs, sees nothing, and says why.
func TestListenerInactive(t *testing.T) {
	n := newTestNet(t, "i")
	py := integration.Binary(t, "python3")
	l, out := listen(t, n.a, Options{})
	waitFor(t, "inactivity reported", func() bool { return l.Stats().Inactive != "" })
	n.start(t, n.b, py, "-c", fmt.Sprintf(`
import socket
s = socket.socket(); s.bind(("%s", 8080)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()
`, n.addrB))
	time.Sleep(300 * time.Millisecond)
	cl := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", fmt.Sprintf(`
import socket, time
for i in range(50):
    try:
        socket.create_connection(("%s", 8080), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
`, n.addrB))
	if o, err := cl.CombinedOutput(); err != nil {
		t.Fatalf("client: %v: %s", err, o)
	}
	select {
	case f := <-out:
		t.Fatalf("flow in a namespace without conntrack hooks: %+v", f)
	case <-time.After(300 * time.Millisecond):
	}
	st := l.Stats()
	if !st.Running || st.Received != 0 || st.Tracked != 0 || !strings.Contains(st.Describe(), "no event is possible") {
		t.Fatalf("stats: %+v", st)
	}
	t.Logf("Describe: %s", st.Describe())
}

// TestListenerGone: a namespace path that does not exist ends Run with
// ErrNamespaceGone at once.
func TestListenerGone(t *testing.T) {
	l := New(Options{NSPath: "/run/netns/picket-no-such-namespace"})
	err := l.Run(context.Background(), make(chan Flow))
	if !errors.Is(err, ErrNamespaceGone) {
		t.Fatalf("Run: %v", err)
	}
}

// TestListenerUnprivileged runs the listener as nobody (a child process of
// the test binary): Run must return at once with a clear reason.
func TestListenerUnprivileged(t *testing.T) {
	if os.Getenv("PICKET_CT_UNPRIV_CHILD") == "1" {
		l := New(Options{})
		done := make(chan error, 1)
		go func() { done <- l.Run(context.Background(), make(chan Flow)) }()
		select {
		case err := <-done:
			fmt.Printf("ERR=%v\nUNAVAILABLE=%s\nDESCRIBE=%s\n", err, l.Stats().Unavailable, l.Stats().Describe())
			if !errors.Is(err, ErrUnavailable) {
				os.Exit(3)
			}
		case <-time.After(5 * time.Second):
			fmt.Println("Run did not return")
			os.Exit(4)
		}
		return
	}
	integration.Root(t)
	// The test binary lives in a private build directory: copy it where
	// nobody can run it.
	dir, err := os.MkdirTemp("", "picket-ct-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/conntrack.test"
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestListenerUnprivileged$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PICKET_CT_UNPRIV_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "UNAVAILABLE=no permission") {
		t.Fatalf("child output:\n%s", out)
	}
	t.Logf("%s", out)
}
