package pipeline

import (
	"testing"
	"time"
)

// BenchmarkDetectCorrelate is the events/s of the whole detect + correlate
// path (every built-in detector and the baseline's deviation rules, after
// a learned quiet week) on a second quiet week: web requests, processes,
// connections, logins, persistence and file events in their real mix.
// Issue 6 target: >= 100,000 events/s on one core (`make bench` runs it
// with -cpu 1).
func BenchmarkDetectCorrelate(b *testing.B) {
	p := defaultPolicy(b)
	pl, _ := learned(b, p, quietWeek(weekStart, 1))
	week := quietWeek(weekStart.AddDate(0, 0, 7), 2)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for i := 0; b.Loop(); i++ {
		pl.Process(week[i%len(week)])
		n++
		if n%4096 == 0 {
			pl.Take()
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
