//go:build linux

package conntrack

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// BenchmarkKernelFlood: NEW events received from the kernel per second
// while a process in the namespace sends 20,000 datagrams to distinct
// ports as fast as it can (each a new flow), with the events lost to
// overruns. One flood per iteration; the namespace's table is flushed
// between floods (the flows stay within the host's conntrack limit).
func BenchmarkKernelFlood(b *testing.B) {
	for _, c := range []struct {
		name   string
		buffer int
	}{{"default-buffer", 0}, {"64KiB-buffer", 64 << 10}} {
		b.Run(c.name, func(b *testing.B) { benchFlood(b, c.buffer) })
	}
}

// benchFlood: a small buffer shows overruns counted, not fatal.
func benchFlood(b *testing.B, buffer int) {
	n := newTestNet(b, "b")
	n.track(b, n.a)
	py := integration.Binary(b, "python3")
	ctBin := integration.Binary(b, "conntrack")
	l, out := listen(b, n.a, Options{ReadBuffer: buffer})
	go func() {
		for range out {
		}
	}()
	const flood = 20000
	var received, lost uint64
	var elapsed time.Duration
	for b.Loop() {
		before := l.Stats()
		start := time.Now()
		cmd := exec.Command(n.ip, "netns", "exec", n.a, py, "-c", fmt.Sprintf(`
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(%d):
    s.sendto(b"x", ("%s", 1024 + i %% 40000))
    if i %% 40000 == 39999:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
`, flood, n.addrB))
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("flood: %v %s", err, o)
		}
		deadline := time.Now().Add(5 * time.Second)
		last, lastChange := l.Stats().Received, time.Now()
		for time.Now().Before(deadline) && time.Since(lastChange) < 200*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
			if r := l.Stats().Received; r != last {
				last, lastChange = r, time.Now()
			}
		}
		elapsed += lastChange.Sub(start)
		after := l.Stats()
		got := after.Received - before.Received
		received += got
		lost += flood - min(got, flood)
		b.StopTimer()
		// Only the test namespace's table: `ip netns exec` scopes it.
		n.run(b, n.ip, "netns", "exec", n.a, ctBin, "-F")
		b.StartTimer()
	}
	st := l.Stats()
	b.ReportMetric(float64(received)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(st.Overruns), "overruns")
	b.Logf("received %d, lost %d, overruns %d, dropped by consumer %d, buffer %d bytes", received, lost, st.Overruns, st.Dropped, st.ReadBuffer)
}
