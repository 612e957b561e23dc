//go:build linux

// Package netnstest builds throwaway network namespaces for tests: named
// namespaces (so `ip netns exec` and nft work in them), veth links with
// addresses from 198.18.0.0/15, Go code run inside a namespace, and echo
// servers and clients to prove what traffic passes. Everything is deleted
// at test cleanup; the host's own network is never touched.
package netnstest

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

var seq atomic.Int32

// NS is a named network namespace.
type NS struct {
	Name string
	file *os.File
}

// FD is an open descriptor of the namespace (valid until cleanup).
func (n *NS) FD() int { return int(n.file.Fd()) }

// New creates a namespace named picket-<prefix>-<pid>-<n>-<role> with its
// loopback up, deleted at cleanup.
func New(t testing.TB, prefix, role string) *NS {
	t.Helper()
	integration.Root(t)
	integration.Binary(t, "ip")
	name := fmt.Sprintf("picket-%s-%d-%d-%s", prefix, os.Getpid(), seq.Add(1), role)
	Run(t, "ip", "netns", "add", name)
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
	n := &NS{Name: name, file: f}
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// Run runs a command and fails the test when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs `ip -n NS args...`.
func (n *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	Run(t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a command inside the namespace.
func (n *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Command returns a command that runs inside the namespace.
func (n *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Link connects a and b with a veth pair: a's end named aDev with address
// aAddr (CIDR), b's end bDev with bAddr.
func Link(t testing.TB, a *NS, aDev, aAddr string, b *NS, bDev, bAddr string) {
	t.Helper()
	a.IP(t, "link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.Name)
	a.IP(t, "addr", "add", aAddr, "dev", aDev)
	a.IP(t, "link", "set", aDev, "up")
	b.IP(t, "addr", "add", bAddr, "dev", bDev)
	b.IP(t, "link", "set", bDev, "up")
}

// Do runs fn on an OS thread moved into the namespace; the thread is never
// unlocked, so Go discards it afterwards. Sockets made in fn stay in the
// namespace for their whole life.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.FD(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Serve starts a TCP echo server on addr (host:port) in the namespace.
func (n *NS) Serve(t testing.TB, addr string) {
	t.Helper()
	var l net.Listener
	if err := n.Do(func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, n.Name, err)
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

// Open connects from the namespace (from src when not empty) to an echo
// server and checks one round trip; the connection stays open.
func (n *NS) Open(src, dst string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var err error
		if c, err = d.Dial("tcp", dst); err != nil {
			return err
		}
		if err := Echo(c, timeout); err != nil {
			c.Close()
			return err
		}
		return nil
	})
	return c, err
}

// Dial opens and closes: nil means the echo worked.
func (n *NS) Dial(src, dst string) error {
	c, err := n.Open(src, dst, 500*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err
}

// Echo sends a line on c and expects it back.
func Echo(c net.Conn, timeout time.Duration) error {
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

// Eventually polls cond every 100 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
