package proctable

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// churn runs n short-lived processes the way a busy host does: a shell
// (pid 100) forks a child, the child execs and exits. Pids wrap at pidMax
// as the kernel's do, so pids are reused all along. Every event carries
// freshly allocated strings, as the sensor's reads of /proc would.
func churn(tb *Table, n, pidMax int, tick *uint64) {
	pid := 200
	for i := 0; i < n; i++ {
		pid++
		if pid >= pidMax {
			pid = 200
		}
		*tick++
		start := *tick
		tb.Observe(&event.Event{Kind: event.ProcFork, Proc: &event.Process{PID: pid, PPID: 100, StartTime: start}})
		s := strconv.Itoa(i)
		tb.Observe(&event.Event{Kind: event.ProcExec, Proc: &event.Process{PID: pid, PPID: 100, StartTime: start,
			Comm: "true", Exe: "/usr/bin/true", Args: []string{"/usr/bin/true", "--job=" + s}, Cgroup: "0::/system.slice/cron.service"}})
		tb.Observe(&event.Event{Kind: event.ProcExit, Proc: &event.Process{PID: pid, StartTime: start}})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func setupShell(c *clock) (*Table, uint64) {
	tb := newTable(c, Options{})
	exec(tb, 1, 0, 1, "systemd")
	exec(tb, 50, 1, 2, "cron")
	exec(tb, 100, 50, 3, "sh")
	return tb, 3
}

// A million short-lived processes leave the table as it was, and the heap
// within a few megabytes of where it started.
func TestChurnBounded(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	c := newClock()
	tb, tick := setupShell(c)
	churn(tb, 1000, 1<<22, &tick) // warm up: maps and lists at their working size
	before := heapInUse()
	churn(tb, n, 1<<22, &tick)
	after := heapInUse()
	if tb.Len() != 3 {
		t.Errorf("Len = %d after %d short-lived processes, want 3", tb.Len(), n)
	}
	s := tb.Stats()
	if s.Expired != n+1000 || s.Evicted != 0 || s.Live != 3 {
		t.Errorf("stats = %+v", s)
	}
	growth := int64(after) - int64(before)
	t.Logf("%d processes: heap %d -> %d bytes (%+d)", n, before, after, growth)
	if growth > 5<<20 {
		t.Errorf("heap grew %d bytes over %d processes, want < 5 MB", growth, n)
	}
	checkInvariants(t, tb)
}

// Churn that defeats the exited-without-children shortcut: every process
// forks a child that outlives it, or never exits. The cap holds.
func TestChurnCap(t *testing.T) {
	c := newClock()
	tb := newTable(c, Options{Max: 1000, ExitedTTL: time.Hour, KeepExitedAncestors: true})
	exec(tb, 1, 0, 1, "systemd")
	exec(tb, 22, 1, 2, "sshd")
	tick := uint64(10)
	for i := 0; i < 200_000; i++ {
		p := 1000 + 2*(i%100_000)
		tick += 2
		// p forks p+1, p+1 never exits, p exits.
		fork(tb, p, 22, tick)
		exec(tb, p, 22, tick, "sh")
		fork(tb, p+1, p, tick+1)
		exec(tb, p+1, p, tick+1, "sleep")
		exit(tb, p, tick)
		if tb.Len() > 1000 {
			t.Fatalf("Len %d over Max 1000 at %d", tb.Len(), i)
		}
		if i%20_000 == 0 {
			checkInvariants(t, tb)
			// sshd is an ancestor of every new process: it keeps
			// being seen and is never the one evicted.
			if _, ok := tb.Get(22); !ok {
				t.Fatalf("sshd evicted at %d", i)
			}
		}
	}
	s := tb.Stats()
	if s.Evicted == 0 || s.Live+s.Exited != 1000 {
		t.Errorf("stats = %+v", s)
	}
	t.Logf("stats %+v", s)
	checkInvariants(t, tb)
}

// Random events over a small pid space, with and without start times:
// whatever the order, the bookkeeping holds and lineages end.
func TestRandomEvents(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		randomEvents(t, r, 5000)
	}
}

func randomEvents(t testing.TB, r interface{ IntN(int) int }, n int) {
	c := newClock()
	tb := newTable(c, Options{Max: 1 + r.IntN(40), ExitedTTL: time.Second, MaxDepth: 8,
		KeepExitedAncestors: r.IntN(2) == 0})
	kinds := []event.Kind{event.ProcExec, event.ProcFork, event.ProcExit}
	for i := 0; i < n; i++ {
		pid, ppid := r.IntN(30), r.IntN(30)
		var start uint64
		if r.IntN(3) > 0 {
			start = uint64(r.IntN(6))
		}
		comm := ""
		if r.IntN(2) == 0 {
			comm = "c" + strconv.Itoa(pid)
		}
		ev := proc(kinds[r.IntN(3)], pid, ppid, start, comm)
		tb.Observe(ev)
		if ev.Kind == event.ProcExec && ev.Proc.PID > 0 {
			l := ev.Proc.Lineage
			if len(l) > 8 {
				t.Fatalf("lineage of %d", len(l))
			}
			for j, a := range l {
				if a.PID == ev.Proc.PID {
					t.Fatalf("pid %d in its own lineage %v", a.PID, l)
				}
				for _, b := range l[:j] {
					if a.PID == b.PID {
						t.Fatalf("pid %d twice in lineage %v", a.PID, l)
					}
				}
			}
		}
		if r.IntN(50) == 0 {
			c.Add(time.Duration(r.IntN(3)) * time.Second)
		}
		if i%97 == 0 {
			checkInvariants(t, tb)
		}
	}
	checkInvariants(t, tb)
}

// byteRand draws numbers from the fuzzer's bytes.
type byteRand struct {
	b []byte
	i int
}

func (r *byteRand) IntN(n int) int {
	if r.i >= len(r.b) {
		return 0
	}
	v := int(r.b[r.i])
	r.i++
	return v % n
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte("exec fork exit exec exec exit fork fork"))
	f.Fuzz(func(t *testing.T, b []byte) {
		randomEvents(t, &byteRand{b: b}, len(b)/4+1)
	})
}

// BenchmarkChurn measures one short-lived process (fork, exec, exit) per
// op and reports the heap growth over the run; run it with
// -benchtime=1000000x for the figure the issue asks for.
func BenchmarkChurn(b *testing.B) {
	c := newClock()
	tb, tick := setupShell(c)
	churn(tb, 1000, 1<<22, &tick)
	before := heapInUse()
	b.ReportAllocs()
	b.ResetTimer()
	churn(tb, b.N, 1<<22, &tick)
	b.StopTimer()
	after := heapInUse()
	b.ReportMetric(float64(int64(after)-int64(before)), "heap-growth-B")
	b.ReportMetric(float64(tb.Len()), "held")
}

// BenchmarkExecLineage measures an exec five levels deep in a table of
// 5,000 live processes: the per-exec cost the sensor pays.
func BenchmarkExecLineage(b *testing.B) {
	c := newClock()
	tb := newTable(c, Options{})
	boot(tb)
	fork(tb, 4410, 1201, 1000)
	exec(tb, 4410, 1201, 1000, "sh")
	for i := 0; i < 5000; i++ {
		exec(tb, 10000+i, 812, uint64(2000+i), "worker")
	}
	ev := &event.Event{Kind: event.ProcExec, Proc: &event.Process{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		*ev.Proc = event.Process{PID: 4411, PPID: 4410, StartTime: 1001, Comm: "curl", Exe: "/usr/bin/curl"}
		tb.Observe(ev)
	}
	b.StopTimer()
	if len(ev.Proc.Lineage) != 4 {
		b.Fatalf("lineage %v", ev.Proc.Lineage)
	}
}

// TestMemoryPerProcess reports what a held process costs, for a table full
// to its default cap (events with their own strings, as from the sensor).
func TestMemoryPerProcess(t *testing.T) {
	if raceEnabled {
		t.Skip("heap figures are meaningless under the race detector")
	}
	c := newClock()
	tb := newTable(c, Options{})
	exec(tb, 1, 0, 1, "systemd")
	before := heapInUse()
	for i := 0; i < DefaultMax-1; i++ {
		s := strconv.Itoa(i)
		tb.Observe(&event.Event{Kind: event.ProcExec, Proc: &event.Process{PID: 1000 + i, PPID: 1, StartTime: uint64(10 + i),
			Comm: "worker", Exe: "/usr/sbin/worker", Args: []string{"/usr/sbin/worker", "--id=" + s}}})
	}
	after := heapInUse()
	if tb.Len() != DefaultMax {
		t.Fatalf("Len = %d", tb.Len())
	}
	per := float64(after-before) / float64(DefaultMax-1)
	t.Logf("%d processes held: %.0f bytes each, %.1f MB in all (args included)", DefaultMax, per, float64(after-before)/(1<<20))
	if per > 1024 {
		t.Errorf("%.0f bytes per process", per)
	}
	runtime.KeepAlive(tb)
}
