package netsock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/proc"
)

// fakeProc builds a /proc tree: namespaces, fd links, tables and the
// files proc.Reader reads.
type fakeProc struct {
	t    testing.TB
	root string
}

func newFakeProc(t testing.TB) *fakeProc {
	f := &fakeProc{t: t, root: t.TempDir()}
	f.link("self/ns/net", "net:[1]")
	f.write("passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
	return f
}

func (f *fakeProc) write(rel, content string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) link(rel, target string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	_ = os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) process(pid int, ns uint64, comm, exe string, uid int, sockets ...uint64) {
	d := fmt.Sprint(pid)
	f.link(d+"/ns/net", fmt.Sprintf("net:[%d]", ns))
	f.link(d+"/exe", exe)
	f.link(d+"/cwd", "/")
	f.write(d+"/cmdline", comm+"\x00-x\x00")
	f.write(d+"/stat", fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, comm, pid, pid, 1000+pid))
	f.write(d+"/status", fmt.Sprintf("Name:\t%s\nTgid:\t%d\nPPid:\t1\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n", comm, pid, uid, uid, uid, uid))
	for i, s := range sockets {
		f.link(fmt.Sprintf("%s/fd/%d", d, 3+i), fmt.Sprintf("socket:[%d]", s))
	}
	f.link(d+"/fd/0", "/dev/null")
}

// table writes dir/net/tcp from entries.
func (f *fakeProc) table(dir string, es ...Entry) {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for _, e := range es {
		b.WriteString(format(e))
	}
	f.write(dir+"/net/tcp", b.String())
}

func entry(local string, lport int, remote string, rport int, st State, inode uint64) Entry {
	return Entry{Socket: sock(TCP, local, lport, remote, rport, inode), State: st}
}

func summary(evs []event.Event) []string {
	var out []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %s:%d>%s:%d ns=%d detail=%q", ev.Kind, ev.Net.Local, ev.Net.LPort, ev.Net.Remote, ev.Net.RPort, ev.Net.NetNS, ev.Detail)
		if ev.Proc != nil {
			s += fmt.Sprintf(" proc=%s(%d) user=%s", ev.Proc.Comm, ev.Proc.PID, ev.Proc.User)
		}
		out = append(out, s)
	}
	return out
}

func expect(t *testing.T, got []event.Event, want ...string) {
	t.Helper()
	g := summary(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestSensorDiff(t *testing.T) {
	f := newFakeProc(t)
	f.process(100, 1, "python3", "/usr/bin/python3.11", 1000, 5001)
	f.process(200, 2, "nginx", "/usr/sbin/nginx", 0, 6001)
	f.table("self",
		entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 5000),
		entry("10.0.0.5", 22, "192.168.1.10", 54321, StateEstablished, 5002), // accepted: inbound
		entry("10.0.0.5", 40000, "203.0.113.9", 443, StateEstablished, 5001),
		entry("10.0.0.5", 40001, "203.0.113.9", 80, 0x06, 0)) // TIME_WAIT
	f.table("200", entry("0.0.0.0", 8080, "0.0.0.0", 0, StateListen, 6001))

	s := New(Options{ProcRoot: f.root, Users: proc.NewUsers(filepath.Join(f.root, "passwd"))})
	evs, err := s.Poll(t0)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, evs,
		`net.listen 0.0.0.0:22>0.0.0.0:0 ns=0 detail="initial"`,
		`net.listen 0.0.0.0:8080>0.0.0.0:0 ns=2 detail="initial" proc=nginx(200) user=root`,
		`net.connect 10.0.0.5:40000>203.0.113.9:443 ns=0 detail="initial" proc=python3(100) user=alice`)
	if evs[2].Addr.String() != "203.0.113.9" || evs[2].Port != 443 || evs[2].PID != 100 || evs[2].Time != t0 || evs[2].Source != SourceProcfs {
		t.Fatalf("connect event fields: %+v", evs[2])
	}

	// Listener 8080 closes, python3 opens 9090 and starts a connection.
	f.process(100, 1, "python3", "/usr/bin/python3.11", 1000, 5001, 5003, 5004)
	f.table("self",
		entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 5000),
		entry("10.0.0.5", 22, "192.168.1.10", 54321, StateEstablished, 5002),
		entry("10.0.0.5", 40000, "203.0.113.9", 443, StateEstablished, 5001),
		entry("0.0.0.0", 9090, "0.0.0.0", 0, StateListen, 5003),
		entry("10.0.0.5", 40002, "198.18.0.1", 3306, StateSynSent, 5004))
	f.table("200", entry("127.0.0.1", 9000, "0.0.0.0", 0, StateListen, 0))
	evs, err = s.Poll(t0.Add(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, evs,
		`net.listen 0.0.0.0:9090>0.0.0.0:0 ns=0 detail="" proc=python3(100) user=alice`,
		`net.listen 127.0.0.1:9000>0.0.0.0:0 ns=2 detail=""`,
		`net.connect 10.0.0.5:40002>198.18.0.1:3306 ns=0 detail="syn-sent" proc=python3(100) user=alice`,
		`net.unlisten 0.0.0.0:8080>0.0.0.0:0 ns=2 detail="" proc=nginx(200) user=root`)

	// Nothing changed: no events and no fd walk (the inodes are cached,
	// the unowned listener's absence too).
	walks := s.Stats().FDWalks
	evs, _ = s.Poll(t0.Add(4 * time.Second))
	if len(evs) != 0 || s.Stats().FDWalks != walks {
		t.Fatalf("quiet poll: %v, walks %d → %d", summary(evs), walks, s.Stats().FDWalks)
	}
	st := s.Stats()
	if st.Namespaces != 2 || st.Listeners != 3 || st.Connections != 2 || st.Unowned != 2 || st.Polls != 3 {
		t.Fatalf("stats %+v", st)
	}
	if d, detail := s.Live(); d || !strings.Contains(detail, "2 namespaces, 3 listeners (2 without process), 2 outbound connections") {
		t.Fatalf("Live: %v %s", d, detail)
	}
}

func TestSensorBounded(t *testing.T) {
	f := newFakeProc(t)
	var es []Entry
	es = append(es, entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 1))
	for i := 0; i < 10; i++ {
		es = append(es, entry("10.0.0.5", 40000+i, "203.0.113.9", 443, StateEstablished, uint64(100+i)))
	}
	f.table("self", es...)
	s := New(Options{ProcRoot: f.root, MaxTracked: 4})
	evs, _ := s.Poll(t0)
	if len(evs) != 4 || evs[0].Kind != event.NetListen || s.Stats().Untracked != 7 {
		t.Fatalf("first poll: %v %+v", summary(evs), s.Stats())
	}
	// The untracked sockets are not reported again, and the tracked set
	// stays the same.
	evs, _ = s.Poll(t0.Add(time.Second))
	if len(evs) != 0 {
		t.Fatalf("second poll: %v", summary(evs))
	}
	if d, detail := s.Live(); !d || !strings.Contains(detail, "7 sockets over the limit of 4") {
		t.Fatalf("Live: %v %s", d, detail)
	}
	if n := len(s.owners.pid); n > 8 {
		t.Fatalf("owner cache %d entries", n)
	}
}

func TestSensorNoTables(t *testing.T) {
	f := newFakeProc(t)
	s := New(Options{ProcRoot: f.root})
	if _, err := s.Poll(t0); err == nil {
		t.Fatal("no error without tables")
	}
	if d, detail := s.Live(); !d || !strings.Contains(detail, "failed polls") {
		t.Fatalf("Live: %v %s", d, detail)
	}
}

// TestAcceptedWhileListenerMissed: a poll whose dump lacks a listener seen
// before (a race between the listener and connection dumps) still reads
// the connections accepted on its port as inbound, never as the server
// connecting out (sshd "connecting to" the brute-forcer it accepted).
func TestAcceptedWhileListenerMissed(t *testing.T) {
	f := newFakeProc(t)
	f.table("self", entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 5000))
	s := New(Options{ProcRoot: f.root, Users: proc.NewUsers(filepath.Join(f.root, "passwd"))})
	if _, err := s.Poll(t0); err != nil {
		t.Fatal(err)
	}
	f.table("self", entry("10.0.0.5", 22, "198.18.3.3", 37289, StateEstablished, 5002))
	evs, err := s.Poll(t0.Add(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Kind == event.NetConnect {
			t.Fatalf("accepted connection reported as outbound: %s", summary(evs))
		}
	}
}
