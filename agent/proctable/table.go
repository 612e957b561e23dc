// Package proctable keeps the live process tree the process sensor builds
// from fork, exec and exit events, so that every exec event reaches the
// detectors with its ancestry (nginx → php-fpm → sh → curl) and its
// container already filled in. The sensor (agent/proc) owns one Table and
// passes each event through Observe before sending it on; detectors read
// ev.Proc.Lineage and ev.Proc.Container and never query the table
// themselves.
//
// Identity is (pid, start time), not pid: pids are reused, and a reused pid
// must never inherit the lineage of the process that had it before. An
// exited process is kept while it is useful, so its children still show it
// in their lineage after the kernel reparents them; memory stays bounded
// whatever the churn (a hard cap, eviction, and exited processes without
// children forgotten at once).
package proctable

import (
	"math"
	"time"

	"github.com/picket-agent/picket/agent/container"
	"github.com/picket-agent/picket/agent/event"
)

// Defaults for Options.
const (
	DefaultMax       = 32768
	DefaultExitedTTL = 30 * time.Second
	DefaultMaxDepth  = 32
)

// ContainerNamer names containers without blocking; *container.Resolver and
// container.Resolvers implement it.
type ContainerNamer interface {
	Lookup(runtime, id string) (name, image string, ok bool)
}

// Options configure a Table. Zero values take the defaults.
type Options struct {
	// Max is the hard cap on processes held, live and exited (32768, the
	// kernel's default pid_max). At the cap, the oldest exited process
	// goes first, then the least recently seen live one.
	Max int
	// ExitedTTL is how long an exited process that still has children in
	// the table is kept so they keep their lineage (30 s). An exited
	// process without children is forgotten at once: no lineage needs it.
	ExitedTTL time.Duration
	// KeepExitedAncestors keeps an exited process past ExitedTTL for as
	// long as it has children in the table (still within Max), so that a
	// daemonised child (a reverse shell whose parent sh exited) keeps
	// showing where it came from for its whole life, not only for
	// ExitedTTL.
	KeepExitedAncestors bool
	// MaxDepth caps the ancestors filled into an exec event (32).
	MaxDepth int
	// Now is the clock (time.Now); tests drive it.
	Now func() time.Time
	// Containers names the container of exec events whose cgroup names
	// one; nil leaves Name and Image empty.
	Containers ContainerNamer
}

// Stats counts what the table holds and what it dropped.
type Stats struct {
	Live   int // processes held that have not exited
	Exited int // exited processes held for their children's lineage
	// Evicted counts processes dropped to stay within Max. Non-zero means
	// some lineages are shorter than they should be: raise Max.
	Evicted int
	// Expired counts exited processes forgotten: without children at
	// exit, or after ExitedTTL.
	Expired int
	// Reused counts pid reuse: an entry replaced by a different process
	// with the same pid (different start time, or a fork/exec on a pid
	// whose process had exited).
	Reused int
	// Reparented counts processes whose parent changed after they were
	// first seen (their parent exited and the kernel gave them to a
	// subreaper or init).
	Reparented int
}

// Table is the process tree. It is not safe for concurrent use: the
// process sensor's goroutine owns it and is its only caller; everything it
// hands out (lineage slices, containers, args) is shared and read-only.
type Table struct {
	o      Options
	byPID  map[int32]*entry
	live   list // most recently seen first
	exited list // exited first, expiring first
	gen    uint64
	stats  Stats
}

// entry is one process. Parents are referred to by (pid, gen), never by
// pointer: a dropped parent must not be kept alive by its children, and a
// reused pid must not be mistaken for the parent (gen differs).
type entry struct {
	pid, ppid int32
	linkPID   int32  // the parent this process's lineage goes through
	children  int32  // entries whose link is this one
	gen       uint64 // unique per entry, never reused
	linkGen   uint64 // gen of linkPID's entry; 0: not linked
	start     uint64 // start time in ticks since boot; 0: unknown
	expireAt  int64  // exited: when to forget it (unix ns)
	uid       int
	exited    bool
	comm, exe string
	args      []string
	cgroup    string
	ctr       *event.Container
	prev      *entry
	next      *entry
}

// New returns an empty table.
func New(o Options) *Table {
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.ExitedTTL <= 0 {
		o.ExitedTTL = DefaultExitedTTL
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Table{o: o, byPID: make(map[int32]*entry)}
	t.live.init()
	t.exited.init()
	return t
}

// Observe applies one process event. For ProcExec it also fills
// ev.Proc.Lineage (parent first, at most MaxDepth, ending at pid 1, at a
// cycle, or where the table knows no more) and, when the cgroup names a
// container and the sensor did not set one, ev.Proc.Container. Other kinds,
// and events without Proc, are ignored.
//
// Thread events must not be sent: a fork whose child is a thread, or the
// exit of a thread that is not the group leader, would be taken for a
// process. (A fork with PID == PPID, which is what a thread looks like
// when reported by tgid, is ignored.)
//
// The event's strings and Args are kept, not copied: the sender must not
// modify them afterwards.
func (t *Table) Observe(ev *event.Event) {
	if ev == nil || ev.Proc == nil || !validPID(ev.Proc.PID) {
		return
	}
	t.expire()
	switch ev.Kind {
	case event.ProcExec:
		t.exec(ev.Proc)
	case event.ProcFork:
		t.fork(ev.Proc)
	case event.ProcExit:
		t.exit(ev.Proc)
	}
}

// exec records a process's new image and fills the event.
func (t *Table) exec(p *event.Process) {
	pid := int32(p.PID)
	e := t.byPID[pid]
	if e != nil && !sameProcess(e, p.StartTime) {
		t.stats.Reused++
		t.remove(e)
		e = nil
	}
	if e == nil {
		e = t.insert(pid, p.PPID, p.StartTime)
	} else {
		if !e.exited {
			t.live.moveToFront(e)
		}
		if e.start == 0 {
			e.start = p.StartTime
		}
		if validPID(p.PPID) && int32(p.PPID) != e.ppid {
			t.reparent(e, int32(p.PPID))
		}
	}
	e.uid, e.comm, e.exe, e.args = p.UID, p.Comm, p.Exe, p.Args
	t.setContainer(e, p)
	p.Lineage = t.lineage(e)
}

// sameProcess reports whether an event with start time start is about the
// process e (an exec of it, a repeated report) rather than a new process
// that got its pid.
func sameProcess(e *entry, start uint64) bool {
	if start != 0 && e.start != 0 {
		return start == e.start
	}
	// Without start times: a process that exited cannot exec again.
	return !e.exited
}

// reparent records that e's parent is now ppid. The kernel only changes a
// process's parent when the parent exits, so the old parent, if still held
// as live, is marked exited; e's lineage keeps going through it while it is
// held, since where a process came from matters more than who reaps it.
func (t *Table) reparent(e *entry, ppid int32) {
	old := e.ppid
	e.ppid = ppid
	t.stats.Reparented++
	if par := t.linked(e); par != nil && par.pid == old && par.pid > 1 && !par.exited {
		t.markExited(par)
	}
}

// setContainer attributes e to the container its cgroup names and sets
// p.Container.
func (t *Table) setContainer(e *entry, p *event.Process) {
	if p.Container != nil { // the sensor knows better
		e.cgroup, e.ctr = p.Cgroup, p.Container
		return
	}
	if p.Cgroup == "" {
		// Unknown (a partial read): keep what was inherited at fork.
		p.Container = e.ctr
		return
	}
	// Same cgroup as inherited or last seen, already named (or nobody to
	// name it): share the container rather than allocate one per exec.
	if p.Cgroup == e.cgroup && (e.ctr == nil || e.ctr.Name != "" || t.o.Containers == nil) {
		p.Container = e.ctr
		return
	}
	e.cgroup, e.ctr = p.Cgroup, nil
	if rt, id, ok := container.ParseCgroup(p.Cgroup); ok {
		c := &event.Container{Runtime: rt, ID: id}
		if t.o.Containers != nil {
			c.Name, c.Image, _ = t.o.Containers.Lookup(rt, id)
		}
		e.ctr = c
	}
	p.Container = e.ctr
}

// fork records a new child with its parent's identity, which it keeps
// until its own exec.
func (t *Table) fork(p *event.Process) {
	pid := int32(p.PID)
	if p.PPID == p.PID {
		return // a thread reported by its tgid
	}
	if e := t.byPID[pid]; e != nil {
		if p.StartTime != 0 && p.StartTime == e.start {
			return // the same fork reported twice (connector and scan)
		}
		// fork hands out a pid no live process has: whatever held it
		// before is gone, whether or not its exit was seen.
		t.stats.Reused++
		t.remove(e)
	}
	e := t.insert(pid, p.PPID, p.StartTime)
	par := t.linked(e)
	if par != nil && p.Comm == "" && p.Exe == "" {
		e.uid, e.comm, e.exe, e.args = par.uid, par.comm, par.exe, par.args
		e.cgroup, e.ctr = par.cgroup, par.ctr
		return
	}
	e.uid, e.comm, e.exe, e.args = p.UID, p.Comm, p.Exe, p.Args
	e.cgroup, e.ctr = p.Cgroup, p.Container
	if p.Cgroup == "" && par != nil {
		e.cgroup, e.ctr = par.cgroup, par.ctr
	}
}

// exit marks a process exited.
func (t *Table) exit(p *event.Process) {
	e := t.byPID[int32(p.PID)]
	if e == nil {
		return
	}
	if p.StartTime != 0 && e.start != 0 && p.StartTime != e.start {
		// The exit of a process we never saw, with the pid of one we
		// did: ours must have ended unseen before.
		t.stats.Reused++
		t.remove(e)
		return
	}
	if !e.exited {
		t.markExited(e)
	}
}

// markExited moves e to the exited list, or forgets it at once when no
// entry's lineage goes through it.
func (t *Table) markExited(e *entry) {
	e.exited = true
	t.live.remove(e)
	if e.children <= 0 {
		t.stats.Expired++
		t.remove(e)
		return
	}
	e.expireAt = t.o.Now().Add(t.o.ExitedTTL).UnixNano()
	t.exited.pushBack(e)
}

// expire forgets exited processes whose time is up. The exited list is in
// expiry order, so this looks at its head only.
func (t *Table) expire() {
	if t.exited.empty() {
		return
	}
	now := t.o.Now().UnixNano()
	for e := t.exited.front(); e != nil && e.expireAt <= now; e = t.exited.front() {
		if t.o.KeepExitedAncestors && e.children > 0 {
			t.exited.remove(e)
			e.expireAt = now + int64(t.o.ExitedTTL)
			t.exited.pushBack(e)
			continue
		}
		t.stats.Expired++
		t.remove(e)
	}
}

// insert adds a new process, evicting first if the table is full.
func (t *Table) insert(pid int32, ppid int, start uint64) *entry {
	if validPID(ppid) {
		// The parent is about to be needed: it must not be the one
		// evicted to make room.
		if par := t.byPID[int32(ppid)]; par != nil && !par.exited {
			t.live.moveToFront(par)
		}
	}
	for len(t.byPID) >= t.o.Max {
		t.evictOne()
	}
	t.gen++
	e := &entry{pid: pid, gen: t.gen, start: start}
	if validPID(ppid) {
		e.ppid = int32(ppid)
	}
	t.byPID[pid] = e
	t.live.pushFront(e)
	t.parent(e) // link now, while the parent is certainly the right one
	return e
}

// evictOne drops the oldest exited process or, when none, the least
// recently seen live one.
func (t *Table) evictOne() {
	e := t.exited.front()
	if e == nil {
		e = t.live.back()
	}
	if e == nil {
		return
	}
	t.stats.Evicted++
	t.remove(e)
}

// remove forgets e. A parent that exited and has no other child left is
// forgotten with it (and so on up), since it was kept only for them.
func (t *Table) remove(e *entry) {
	for e != nil {
		if t.byPID[e.pid] == e {
			delete(t.byPID, e.pid)
		}
		if e.exited {
			t.exited.remove(e)
		} else {
			t.live.remove(e)
		}
		par := t.linked(e)
		e.linkGen, e.args, e.ctr = 0, nil, nil
		e = nil
		if par != nil {
			par.children--
			if par.exited && par.children <= 0 {
				t.stats.Expired++
				e = par
			}
		}
	}
}

// linked returns the entry e's lineage link points to, if it is still held.
func (t *Table) linked(e *entry) *entry {
	if e.linkGen == 0 {
		return nil
	}
	if par := t.byPID[e.linkPID]; par != nil && par.gen == e.linkGen {
		return par
	}
	return nil
}

// parent returns the next entry up e's lineage: the process it was linked
// to (its parent when first seen) while that is held, else its current
// parent, linking to it.
func (t *Table) parent(e *entry) *entry {
	if par := t.linked(e); par != nil {
		return par
	}
	if e.linkGen != 0 {
		if e.ppid == e.linkPID {
			// The parent is gone and its pid may be another process
			// by now: no way up.
			return nil
		}
		e.linkGen, e.linkPID = 0, 0
	}
	if e.ppid <= 0 {
		return nil
	}
	par := t.byPID[e.ppid]
	if par == nil || par == e || (par.start != 0 && e.start != 0 && par.start > e.start) {
		// Unknown, or younger than e: a later holder of the pid.
		return nil
	}
	e.linkPID, e.linkGen = par.pid, par.gen
	par.children++
	return par
}

// lineage lists e's ancestors, parent first. Live ancestors count as seen,
// so the long-lived daemons at the top of busy trees are the last to be
// evicted.
func (t *Table) lineage(e *entry) []event.Ancestor {
	var out []event.Ancestor
	for cur := e; len(out) < t.o.MaxDepth; {
		par := t.parent(cur)
		if par == nil || par == e || inLineage(out, par.pid) {
			break
		}
		if out == nil {
			out = make([]event.Ancestor, 0, 8)
		}
		out = append(out, event.Ancestor{PID: int(par.pid), Comm: par.comm, Exe: par.exe,
			Args: par.args, UID: par.uid, Exited: par.exited})
		if !par.exited {
			t.live.moveToFront(par)
		}
		if par.pid <= 1 {
			break
		}
		cur = par
	}
	return out
}

func inLineage(a []event.Ancestor, pid int32) bool {
	for i := range a {
		if a[i].PID == int(pid) {
			return true
		}
	}
	return false
}

// Lineage returns the ancestors of pid as the table knows them now, parent
// first; nil when pid is unknown or has no known parent.
func (t *Table) Lineage(pid int) []event.Ancestor {
	if !validPID(pid) {
		return nil
	}
	t.expire()
	e := t.byPID[int32(pid)]
	if e == nil {
		return nil
	}
	return t.lineage(e)
}

// Get returns what the table holds about pid (identity, parent, container;
// Lineage left empty, see Lineage). Exited processes are returned while
// they are held.
func (t *Table) Get(pid int) (event.Process, bool) {
	if !validPID(pid) {
		return event.Process{}, false
	}
	t.expire()
	e := t.byPID[int32(pid)]
	if e == nil {
		return event.Process{}, false
	}
	return event.Process{PID: int(e.pid), PPID: int(e.ppid), StartTime: e.start, UID: e.uid,
		Comm: e.comm, Exe: e.exe, Args: e.args, Cgroup: e.cgroup, Container: e.ctr}, true
}

// Len is the number of processes held, live and exited.
func (t *Table) Len() int {
	t.expire()
	return len(t.byPID)
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.expire()
	s := t.stats
	s.Live, s.Exited = t.live.n, t.exited.n
	return s
}

func validPID(pid int) bool { return pid > 0 && pid <= math.MaxInt32 }

// list is an intrusive doubly linked list of entries with a sentinel; an
// entry is in at most one list at a time.
type list struct {
	root entry
	n    int
}

func (l *list) init()       { l.root.next, l.root.prev = &l.root, &l.root }
func (l *list) empty() bool { return l.n == 0 }

func (l *list) front() *entry {
	if l.n == 0 {
		return nil
	}
	return l.root.next
}

func (l *list) back() *entry {
	if l.n == 0 {
		return nil
	}
	return l.root.prev
}

func (l *list) insertAfter(e, at *entry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
	l.n++
}

func (l *list) pushFront(e *entry) { l.insertAfter(e, &l.root) }
func (l *list) pushBack(e *entry)  { l.insertAfter(e, l.root.prev) }

// remove unlinks e if it is linked (e.next != nil).
func (l *list) remove(e *entry) {
	if e.next == nil {
		return
	}
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
	l.n--
}

func (l *list) moveToFront(e *entry) {
	if l.root.next == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}
