package proctable

import (
	"strconv"
	"testing"

	"github.com/picket-agent/picket/agent/event"
)

// BenchmarkLive5000 reports the table's heap with 5,000 live processes (a
// busy small server), then after 1,000,000 short-lived ones churned
// through it: the growth must stay near zero (issue target: < 5 MB).
func BenchmarkLive5000(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		tb := New(Options{})
		tb.Observe(&event.Event{Kind: event.ProcExec, Proc: &event.Process{PID: 100, PPID: 1, StartTime: 1, Comm: "sh", Exe: "/usr/bin/dash"}})
		var tick uint64 = 10
		for i := 0; i < 5000; i++ {
			pid := 950_000 + i // above the churn's pid range
			tick++
			tb.Observe(&event.Event{Kind: event.ProcExec, Proc: &event.Process{PID: pid, PPID: 100, StartTime: tick,
				Comm: "worker", Exe: "/usr/sbin/worker", Args: []string{"/usr/sbin/worker", "--id=" + strconv.Itoa(i)}}})
		}
		live := heapInUse()
		churn(tb, 1_000_000, 900_000, &tick)
		after := heapInUse()
		if tb.Len() < 5000 {
			b.Fatalf("live processes lost: %d", tb.Len())
		}
		b.ReportMetric(float64(live-before)/1e6, "MB-5000-live")
		b.ReportMetric((float64(after)-float64(live))/1e6, "MB-growth-after-1M")
	}
}
