package netsock

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDiagMatchesProcNet: sock_diag and /proc/net describe the test's own
// sockets (a TCP listener, an accepted and a connecting end, a bound UDP
// socket, on IPv4 and IPv6) identically, field for field.
func TestDiagMatchesProcNet(t *testing.T) {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for _, nw := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if nw == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(nw, addr)
		if err != nil {
			if nw == "tcp6" {
				continue // no IPv6 loopback here
			}
			t.Fatal(err)
		}
		closers = append(closers, ln.Close)
		c, err := net.Dial(nw, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, c.Close)
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, a.Close)
	}
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, u.Close)

	diag, err := readDiag(0, "/proc/self/net/")
	if err != nil {
		t.Fatalf("sock_diag: %v", err)
	}
	s := New(Options{})
	proc, _, err := s.readTables("/proc/self/net/")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[uint64]bool{}
	for _, fd := range fdInodes(t) {
		mine[fd] = true
	}
	byInode := func(es []Entry) map[uint64]Entry {
		m := map[uint64]Entry{}
		for _, e := range es {
			if mine[e.Inode] {
				m[e.Inode] = e
			}
		}
		return m
	}
	d, p := byInode(diag), byInode(proc)
	if len(p) < 4 {
		t.Fatalf("/proc/net shows only %d of the test's sockets: %v", len(p), p)
	}
	if len(d) != len(p) {
		t.Fatalf("sock_diag found %d of the test's sockets, /proc/net %d:\n%v\n%v", len(d), len(p), d, p)
	}
	states := map[State]bool{}
	for ino, pe := range p {
		if de := d[ino]; de != pe {
			t.Errorf("inode %d: sock_diag %+v, /proc/net %+v", ino, de, pe)
		}
		states[pe.State] = true
	}
	if !states[StateListen] || !states[StateEstablished] || !states[StateClose] {
		t.Errorf("states covered: %v", states)
	}
}

// fdInodes lists the socket inodes of this process's open files.
func fdInodes(t *testing.T) []uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		if v, ok := strings.CutPrefix(l, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
				out = append(out, ino)
			}
		}
	}
	return out
}

// FuzzParseDiag: any bytes in a netlink answer decode or are refused,
// never panic.
func FuzzParseDiag(f *testing.F) {
	f.Add(make([]byte, diagMsgLen))
	f.Add([]byte{10, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, ok := parseDiag(TCP, b); ok && (e.LPort > 65535 || !e.Local.IsValid()) {
			t.Fatalf("bad entry %+v", e)
		}
	})
}

// TestDiagSkipsWalkWithOnlyListeners: when sockstat counts no more TCP
// sockets than listeners, only listeners are dumped (the expensive walk
// of the established hash is skipped); a missing sockstat walks anyway.
func TestDiagSkipsWalkWithOnlyListeners(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lport := ln.Addr().(*net.TCPAddr).Port
	count := func(es []Entry) (listen, conn int) {
		for _, e := range es {
			switch {
			case e.Proto == TCP && e.State == StateListen && e.LPort == lport:
				listen++
			case e.Proto == TCP && e.State != StateListen && (e.LPort == lport || e.RPort == lport):
				conn++
			}
		}
		return
	}
	fake := t.TempDir() + "/"
	os.WriteFile(fake+"sockstat", []byte("sockets: used 1\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\n"), 0o644)
	os.WriteFile(fake+"sockstat6", []byte("TCP6: inuse 0\n"), 0o644)
	if got := tcpInUse(fake); got[TCP] != 0 || got[TCP6] != 0 || len(got) != 2 {
		t.Fatalf("tcpInUse: %v", got)
	}
	es, err := readDiag(0, fake)
	if err != nil {
		t.Fatal(err)
	}
	if l, n := count(es); l != 1 || n != 0 {
		t.Fatalf("gated: %d listeners, %d connections; want 1 and 0 (no walk)", l, n)
	}
	es, err = readDiag(0, t.TempDir()+"/absent/")
	if err != nil {
		t.Fatal(err)
	}
	if l, n := count(es); l != 1 || n != 2 {
		t.Fatalf("without sockstat: %d listeners, %d connections; want 1 and 2", l, n)
	}
	es, err = readDiag(0, "/proc/self/net/")
	if err != nil {
		t.Fatal(err)
	}
	if l, n := count(es); l != 1 || n != 2 {
		t.Fatalf("real sockstat: %d listeners, %d connections; want 1 and 2", l, n)
	}
}
