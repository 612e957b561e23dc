package firewall

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkBlockMany10k inserts 10,000 blocked addresses into an empty set
// (ms/10k), then blocks the same 10,000 again, which refreshes every timeout
// by delete and add (ms/refresh10k).
func BenchmarkBlockMany10k(b *testing.B) {
	n := newNetns(b, "bench")
	f := firewallIn(b, n, Options{})
	ps := addresses(10000)
	var insert, refresh time.Duration
	for b.Loop() {
		if err := f.Remove(); err != nil {
			b.Fatal(err)
		}
		if err := f.Ensure(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := f.BlockMany(ps, time.Hour); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := f.BlockMany(ps, 2*time.Hour); err != nil {
			b.Fatal(err)
		}
		insert += t1.Sub(t0)
		refresh += time.Since(t1)
	}
	if st, err := f.List(); err != nil || len(st.Blocked) != len(ps) {
		b.Fatalf("%d blocked, %v", len(st.Blocked), err)
	}
	b.ReportMetric(float64(insert.Microseconds())/1000/float64(b.N), "ms/10k")
	b.ReportMetric(float64(refresh.Microseconds())/1000/float64(b.N), "ms/refresh10k")
}

// BenchmarkContainment applies containment mode (a whitelist of 20
// destinations, two SSH ports) and rolls it back.
func BenchmarkContainment(b *testing.B) {
	n := newNetns(b, "bench")
	f := firewallIn(b, n, Options{})
	c := Containment{SSHPorts: []uint16{22, 2222}}
	a := netip.MustParseAddr("198.18.50.1")
	for range 20 {
		c.Allow = append(c.Allow, netip.PrefixFrom(a, 32))
		a = a.Next().Next()
	}
	var apply, rollback time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := f.Contain(c, 30*time.Minute); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := f.Uncontain(); err != nil {
			b.Fatal(err)
		}
		apply += t1.Sub(t0)
		rollback += time.Since(t1)
	}
	b.ReportMetric(float64(apply.Microseconds())/1000/float64(b.N), "ms/apply")
	b.ReportMetric(float64(rollback.Microseconds())/1000/float64(b.N), "ms/rollback")
}
