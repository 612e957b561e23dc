//go:build linux

package conntrack

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/picket-agent/picket/internal/integration"
)

// testNet is two network namespaces joined by a veth pair: A holds
// 198.19.<n>.1/30, B 198.19.<n>.2/30. Nothing is created in the host's
// namespace.
type testNet struct {
	ip, nft      string
	a, b         string
	addrA, addrB netip.Addr
	mu           sync.Mutex
	procs        []*exec.Cmd
}

func newTestNet(t testing.TB, tag string) *testNet {
	t.Helper()
	integration.Root(t)
	n := &testNet{ip: integration.Binary(t, "ip"), nft: integration.Binary(t, "nft")}
	id := os.Getpid() % 100000
	n.a, n.b = fmt.Sprintf("picket-ct%s-a-%d", tag, id), fmt.Sprintf("picket-ct%s-b-%d", tag, id)
	octet := (id + len(tag)*37) % 250
	n.addrA = netip.MustParseAddr(fmt.Sprintf("198.19.%d.1", octet))
	n.addrB = netip.MustParseAddr(fmt.Sprintf("198.19.%d.2", octet))
	t.Cleanup(n.close)
	n.run(t, n.ip, "netns", "add", n.a)
	n.run(t, n.ip, "netns", "add", n.b)
	n.run(t, n.ip, "-n", n.a, "link", "add", "ct-a", "type", "veth", "peer", "name", "ct-b", "netns", n.b)
	n.run(t, n.ip, "-n", n.a, "addr", "add", n.addrA.String()+"/30", "dev", "ct-a")
	n.run(t, n.ip, "-n", n.b, "addr", "add", n.addrB.String()+"/30", "dev", "ct-b")
	for ns, dev := range map[string]string{n.a: "ct-a", n.b: "ct-b"} {
		n.run(t, n.ip, "-n", ns, "link", "set", "lo", "up")
		n.run(t, n.ip, "-n", ns, "link", "set", dev, "up")
	}
	return n
}

// track makes conntrack active in ns: the test's setup, never the code's.
func (n *testNet) track(t testing.TB, ns string) {
	t.Helper()
	n.run(t, n.ip, "netns", "exec", ns, n.nft, "add table inet t; add chain inet t c { type filter hook output priority 0; }; add rule inet t c ct state new counter")
}

func (n *testNet) run(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		integration.Skip(t, fmt.Sprintf("%s: %v: %s", strings.Join(argv, " "), err, out))
	}
}

// start runs argv inside namespace ns.
func (n *testNet) start(t testing.TB, ns string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(n.ip, append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, cmd)
	n.mu.Unlock()
	return cmd
}

func (n *testNet) close() {
	n.mu.Lock()
	for _, c := range n.procs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	}
	n.mu.Unlock()
	for _, ns := range []string{n.a, n.b} {
		_ = exec.Command(n.ip, "netns", "del", ns).Run()
	}
}

func nsInodeOf(t testing.TB, name string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
