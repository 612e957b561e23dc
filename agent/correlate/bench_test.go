package correlate

import (
	"fmt"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// BenchmarkCorrelatorChurn50k: the correlator alone under the load
// benchmark's churn, 50,000 addresses each re-reported three times
// (a brute force's doublings), interleaved, with the pipeline's batching
// (flush and compact every 1,024 signals). One op is the 150,000 signals.
func BenchmarkCorrelatorChurn50k(b *testing.B) {
	const addrs, reports = 50000, 3
	p, err := schema.Default()
	if err != nil {
		b.Fatal(err)
	}
	ents := make([]signal.Entity, addrs)
	for i := range ents {
		ents[i] = signal.Entity{Kind: signal.IP, Value: fmt.Sprintf("198.18.%d.%d", i>>8, i&0xff)}
	}
	b.ReportAllocs()
	var elapsed time.Duration
	for b.Loop() {
		c := New(p, nil, 1)
		var changed []*Incident
		t0 := time.Now()
		n := 0
		for r := 0; r < reports; r++ {
			for i := range ents {
				s := signal.Signal{Time: t0.Add(time.Duration(n) * 10 * time.Microsecond), Rule: "ssh.bruteforce", Stage: signal.Recon,
					Weight: 50, Entities: ents[i : i+1], Reason: "failed logins"}
				ch, _ := c.Add(s)
				changed = append(changed, ch.Incident)
				if n++; n%1024 == 0 {
					for _, in := range changed {
						c.Flushed(in)
					}
					changed = changed[:0]
					c.Compact(nil)
				}
			}
		}
		elapsed += time.Since(t0)
	}
	b.ReportMetric(float64(addrs*reports*b.N)/elapsed.Seconds(), "signals/s")
}
