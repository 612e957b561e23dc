package firewall

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
	"golang.org/x/sys/unix"
)

// Test networks live in namespaces this test creates and deletes; the host
// is never touched. Addresses come from 198.18.0.0/15 and 2001:db8::/32.

var nsSeq atomic.Int32

type netns struct {
	name string
	file *os.File
}

func (n *netns) fd() int { return int(n.file.Fd()) }

func newNetns(t testing.TB, role string) *netns {
	t.Helper()
	integration.Root(t)
	integration.Binary(t, "ip")
	name := fmt.Sprintf("picket-fw-%d-%d-%s", os.Getpid(), nsSeq.Add(1), role)
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	n := &netns{name: name, file: f}
	n.ip(t, "link", "set", "lo", "up")
	return n
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *netns) ip(t testing.TB, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"-n", n.name}, args...)...)
}

// exec runs a command inside the namespace (nft, sysctl).
func (n *netns) exec(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// do runs fn on an OS thread moved into the namespace. The thread is never
// unlocked, so Go ends it with the goroutine; sockets made in fn stay in
// the namespace for their whole life.
func (n *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.fd(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// serve starts an echo server on addr (host:port) in the namespace.
func (n *netns) serve(t testing.TB, addr string) {
	t.Helper()
	var l net.Listener
	if err := n.do(func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// open connects from the namespace (from a given source address when src is
// not empty) and checks one echo; the connection stays open.
func (n *netns) open(src, dst string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var err error
		if c, err = d.Dial("tcp", dst); err != nil {
			return err
		}
		if err := echo(c, timeout); err != nil {
			c.Close()
			return err
		}
		return nil
	})
	return c, err
}

func echo(c net.Conn, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("bad echo " + line)
	}
	return nil
}

// dial is open and close: nil means the connection worked.
func (n *netns) dial(src, dst string) error {
	c, err := n.open(src, dst, dialTimeout)
	if err == nil {
		c.Close()
	}
	return err
}

const dialTimeout = 400 * time.Millisecond

// topo is a server namespace S with three client namespaces on their own
// links; S routes between them (for the forward hook).
//
//	C1 198.18.1.2 and .3, 2001:db8:1::2 ── S 198.18.1.1, 2001:db8:1::1
//	C2 198.18.2.2                       ── S 198.18.2.1
//	C3 198.18.3.2                       ── S 198.18.3.1
type topo struct {
	s, c1, c2, c3 *netns
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	tp := &topo{s: newNetns(t, "s"), c1: newNetns(t, "c1"), c2: newNetns(t, "c2"), c3: newNetns(t, "c3")}
	for i, c := range []*netns{tp.c1, tp.c2, tp.c3} {
		n := i + 1
		sl, cl := fmt.Sprintf("s-c%d", n), fmt.Sprintf("c%d", n)
		tp.s.ip(t, "link", "add", sl, "type", "veth", "peer", "name", cl, "netns", c.name)
		tp.s.ip(t, "addr", "add", fmt.Sprintf("198.18.%d.1/24", n), "dev", sl)
		tp.s.ip(t, "link", "set", sl, "up")
		c.ip(t, "addr", "add", fmt.Sprintf("198.18.%d.2/24", n), "dev", cl)
		c.ip(t, "link", "set", cl, "up")
		c.ip(t, "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", n))
	}
	tp.c1.ip(t, "addr", "add", "198.18.1.3/24", "dev", "c1")
	tp.s.ip(t, "addr", "add", "2001:db8:1::1/64", "dev", "s-c1", "nodad")
	tp.c1.ip(t, "addr", "add", "2001:db8:1::2/64", "dev", "c1", "nodad")
	tp.s.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return tp
}

// firewall opens a Firewall in S and ensures its table; Remove at cleanup.
func (tp *topo) firewall(t testing.TB, o Options) *Firewall {
	t.Helper()
	return firewallIn(t, tp.s, o)
}

func firewallIn(t testing.TB, n *netns, o Options) *Firewall {
	t.Helper()
	integration.Binary(t, "nft")
	o.NetNS = n.fd()
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Remove(); err != nil {
			t.Errorf("remove: %v", err)
		}
		f.Close()
	})
	if err := f.Ensure(); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	return f
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
