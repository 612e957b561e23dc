package baseline

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/picket-agent/picket/agent/signal"
)

// BenchmarkModel100k reports the heap held by 100,000 distinct baseline
// keys (issue 6 target: under 30 MB), split across the kinds.
func BenchmarkModel100k(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := NewModel(Caps{Processes: 40000, Outbound: 40000, Listeners: 10000, Logins: 10000, Users: 10000})
		for i := range 25_000 {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			m.Learn(exec(t0, i, "www-data", 33, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i), "/usr/sbin/php-fpm8.2", 1))
			m.Learn(connect(t0, i, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i%100), a.String(), 443, "tcp"))
			m.Learn(listen(t0, i, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i), i%60000, "tcp"))
			m.Learn(login(t0, fmt.Sprintf("user%d", i%5000), a.String(), "publickey"))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB")
		runtime.KeepAlive(m)
	}
}

// BenchmarkObserve is the per-event cost of the detector on known events.
func BenchmarkObserve(b *testing.B) {
	m := NewModel(Caps{})
	evs := normalWeek()
	for _, ev := range evs {
		m.Learn(ev)
	}
	d := NewDeviations(m, Weights{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Observe(evs[i%len(evs)], func(signal.Signal) {})
	}
}
