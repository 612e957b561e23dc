package firewall

import (
	"fmt"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/netnstest"
)

// Test networks live in namespaces this test creates and deletes; the host
// is never touched. Addresses come from 198.18.0.0/15 and 2001:db8::/32.

// netns is a throwaway named network namespace (internal/netnstest).
type netns = netnstest.NS

func newNetns(t testing.TB, role string) *netns {
	t.Helper()
	integration.Binary(t, "nft")
	return netnstest.New(t, "fw", role)
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
		tp.s.IP(t, "link", "add", sl, "type", "veth", "peer", "name", cl, "netns", c.Name)
		tp.s.IP(t, "addr", "add", fmt.Sprintf("198.18.%d.1/24", n), "dev", sl)
		tp.s.IP(t, "link", "set", sl, "up")
		c.IP(t, "addr", "add", fmt.Sprintf("198.18.%d.2/24", n), "dev", cl)
		c.IP(t, "link", "set", cl, "up")
		c.IP(t, "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", n))
	}
	tp.c1.IP(t, "addr", "add", "198.18.1.3/24", "dev", "c1")
	tp.s.IP(t, "addr", "add", "2001:db8:1::1/64", "dev", "s-c1", "nodad")
	tp.c1.IP(t, "addr", "add", "2001:db8:1::2/64", "dev", "c1", "nodad")
	tp.s.Exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
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
	o.NetNS = n.FD()
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

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	netnstest.Eventually(t, d, what, cond)
}
