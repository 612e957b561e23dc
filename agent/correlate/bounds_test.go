package correlate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/signal"
)

// 200,000 distinct attacking addresses within one window: at most
// MaxWhole incidents stay whole, the rest are summarised in a few hundred
// bytes each, and a summarised incident still takes its address's next
// signal under its own id, scored as if its signals were all there.
func TestSummarisedUnderChurn(t *testing.T) {
	const n = 200000
	p := policy(t)
	p.Correlation.MaxOpenIncidents = 2 * n
	c := New(p, nil, 1)
	addr := func(i int) signal.Entity { return ip(fmt.Sprintf("198.18.%d.%d", i>>8, i&0xff)) }
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// What the pipeline does: summarised incidents' pending signals are
	// flushed with each batch, and the whole ones past the cap are
	// summarised after it.
	var changed []*Incident
	take := func() {
		for _, in := range changed {
			c.Flushed(in)
		}
		changed = changed[:0]
		c.Compact(nil)
	}
	for i := 0; i < n; i++ {
		s := sig("ssh.bruteforce", signal.Recon, 50, time.Duration(i)*time.Millisecond, addr(i))
		ch, closed := c.Add(s)
		if !ch.New || ch.Incident.ID != int64(i+1) || len(closed) != 0 {
			t.Fatalf("signal %d: %+v, closed %d", i, ch, len(closed))
		}
		changed = append(changed, ch.Incident)
		if i%1024 == 1023 {
			take()
		}
	}
	take()
	if c.Whole() > MaxWhole || c.Len() != n {
		t.Fatalf("%d whole of %d open, cap %d", c.Whole(), c.Len(), MaxWhole)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n; per > 1500 {
		t.Errorf("%d bytes per open incident", per)
	}
	// The first addresses' incidents were summarised long ago.
	for _, i := range []int{0, 1, 777, n / 2, n - 2*MaxWhole} {
		s := sig("ssh.login_after_failures", signal.InitialAccess, 40, n*time.Millisecond, addr(i), user(fmt.Sprint("u", i)))
		ch, _ := c.Add(s)
		in := ch.Incident
		if ch.New || in.ID != int64(i+1) || in.Summarised != 1 {
			t.Fatalf("address %d: incident %d new=%v summarised=%d", i, in.ID, ch.New, in.Summarised)
		}
		if in.Score != 90 || in.Level != Aggressive || !ch.LevelRaised || in.Status != Escalated {
			t.Fatalf("address %d: score %g level %s raised %v status %s", i, in.Score, in.Level, ch.LevelRaised, in.Status)
		}
		if len(in.Signals) != 1 || in.Signals[0].Rule != "ssh.login_after_failures" {
			t.Fatalf("address %d: pending signals %v", i, in.Signals)
		}
		sc := c.Scoring(in)
		if len(sc.PerStage) != 2 || sc.PerStage[0].Rule != "ssh.bruteforce" || sc.Escalate != 1 {
			t.Fatalf("address %d: scoring %+v", i, sc)
		}
	}
	// Idle incidents still close, summarised or not, in id order.
	closed := c.Tick(t0.Add(n*time.Millisecond + p.Correlation.Window.D() + time.Second))
	if len(closed) != n || closed[0].ID != 1 || closed[n-1].ID != n || c.Len() != 0 || c.Whole() != 0 {
		t.Fatalf("closed %d, open %d, whole %d", len(closed), c.Len(), c.Whole())
	}
}

// Restoring more incidents than MaxWhole summarises the oldest at once.
func TestRestoreSummarises(t *testing.T) {
	c := New(policy(t), nil, 1)
	for i := 1; i <= MaxWhole+10; i++ {
		in := &Incident{ID: int64(i), Opened: t0, Updated: t0.Add(time.Duration(i) * time.Second), Status: Open,
			Entities: []signal.Entity{ip(fmt.Sprint(i))},
			Signals:  []signal.Signal{sig("a", signal.Recon, 50, time.Duration(i)*time.Second, ip(fmt.Sprint(i)))}}
		c.Restore(in)
	}
	if c.Whole() != MaxWhole || c.Len() != MaxWhole+10 {
		t.Fatalf("whole %d open %d", c.Whole(), c.Len())
	}
	ch, _ := c.Add(sig("a", signal.Recon, 50, time.Hour/4, ip("3")))
	if ch.New || ch.Incident.ID != 3 || ch.Incident.Summarised != 1 {
		t.Fatalf("restored incident 3: %+v", ch.Incident)
	}
}
