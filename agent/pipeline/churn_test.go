package pipeline

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/authlog"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
)

// churnLines builds the load benchmark's botnet in miniature: addrs
// distinct sources in 198.18.0.0/15, each failing perAddr times,
// interleaved round by round as a botnet spreads its attempts, one
// second of log time per 100,000 lines.
func churnEvents(tb testing.TB, addrs, perAddr int, start time.Time) []event.Event {
	tb.Helper()
	p := authlog.Parser{Source: "file:/var/log/auth.log", Years: logtime.NewYears(start, time.UTC)}
	out := make([]event.Event, 0, addrs*perAddr)
	base := netip.MustParseAddr("198.18.0.0").As4()
	for r := 0; r < perAddr; r++ {
		for a := 0; a < addrs; a++ {
			n := len(out)
			ip := base
			ip[1] += byte(a >> 16)
			ip[2], ip[3] = byte(a>>8), byte(a)
			addr := netip.AddrFrom4(ip)
			t := start.Add(time.Duration(n) * 10 * time.Microsecond)
			var msg string
			switch (a + r) % 10 {
			case 0, 1, 2:
				msg = fmt.Sprintf("Failed password for root from %s port %d ssh2", addr, 40000+n%20000)
			case 3:
				msg = fmt.Sprintf("Failed publickey for root from %s port %d ssh2: RSA SHA256:abc", addr, 40000+n%20000)
			default:
				msg = fmt.Sprintf("Failed password for invalid user user%d from %s port %d ssh2", (a*7+r)%500, addr, 40000+n%20000)
			}
			line := t.UTC().Format(time.RFC3339Nano) + " host sshd[" + fmt.Sprint(1000+n%30000) + "]: " + msg
			ev, err := p.ParseLine(line)
			if err != nil {
				tb.Fatalf("%q: %v", line, err)
			}
			out = append(out, ev)
		}
	}
	return out
}

// BenchmarkChurn50k is the detect + correlate + respond path under the
// load benchmark's address churn: 50,000 brute-forcing addresses, 20
// failures each, interleaved. One op is the whole million events; it
// reports events/s and the heap the pipeline holds after the run (beyond
// the input).
func churnAddrs() int {
	if n, err := strconv.Atoi(os.Getenv("PICKET_CHURN_ADDRS")); err == nil && n > 0 {
		return n
	}
	return 50000
}

func BenchmarkChurn50k(b *testing.B) {
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	evs := churnEvents(b, churnAddrs(), 20, start)
	p := defaultPolicy(b)
	b.ReportAllocs()
	b.ResetTimer()
	var elapsed time.Duration
	var heap uint64
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		pl, err := New(p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for i := range evs {
			pl.Process(&evs[i])
			if i%1024 == 1023 {
				pl.Take()
			}
		}
		pl.Tick(evs[len(evs)-1].Time)
		pl.Take()
		elapsed += time.Since(t0)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = ms.HeapAlloc - min(ms.HeapAlloc, ms0.HeapAlloc)
		if path := os.Getenv("PICKET_CHURN_HEAPPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		runtime.KeepAlive(pl)
	}
	b.ReportMetric(float64(len(evs)*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
}
