package baseline

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// BenchmarkModel100k reports the heap held by 100,000 distinct baseline
// keys (issue 6 target: under 30 MB), split across every kind.
func BenchmarkModel100k(b *testing.B) {
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := NewModel(Caps{Processes: 40000, Outbound: 40000, Listeners: 20000, Logins: 20000, Users: 10000,
			WebClients: 20000, Persist: 20000, Files: 20000})
		for i := range 14_300 { // 7 keys each: 100,100 keys
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			m.Learn(exec(t0, i, "www-data", 33, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i), "/usr/sbin/php-fpm8.2", 1))
			m.Learn(connect(t0, i, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i%100), a.String(), 443, "tcp"))
			m.Learn(listen(t0, i, fmt.Sprintf("/usr/lib/app/bin/worker-%d", i), i%60000, "tcp"))
			m.Learn(login(t0, fmt.Sprintf("user%d", i%5000), a.String(), "publickey"))
			m.Learn(&event.Event{Time: t0, Kind: event.WebRequest, Source: "file:/var/log/nginx/access.log", Addr: a, Status: 200})
			m.Learn(&event.Event{Time: t0, Kind: event.PersistChanged, Change: &event.Change{What: "cron_line", Op: "added",
				Path: "/etc/cron.d/app", After: fmt.Sprintf("*/5 * * * * app /srv/app/bin/job-%d", i)}})
			m.Learn(&event.Event{Time: t0, Kind: event.FileChanged, Change: &event.Change{What: "file_modified",
				Path: fmt.Sprintf("/etc/app/conf.d/%d.conf", i), After: fmt.Sprintf("sha256:%064x", i)}})
		}
		keys := 0
		for _, n := range m.Len() {
			keys += n
		}
		if keys < 100_000 {
			b.Fatalf("only %d keys", keys)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB")
		runtime.KeepAlive(m)
	}
}

// BenchmarkObserve is the per-event cost of the detector on known events.
func BenchmarkObserve(b *testing.B) {
	m := NewModelIn(Caps{}, time.UTC)
	evs := normalWeek()
	for _, ev := range evs {
		m.Learn(ev)
	}
	d := NewDeviations(m, utc)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.Observe(evs[i%len(evs)], func(signal.Signal) {})
	}
}
