package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// BenchmarkIngestChurn is the live agent's ingest path (auth file sensor,
// pipeline, one SQLite transaction per batch) under the load benchmark's
// churn, without the action engine: 20 sshd failures from each of
// PICKET_INGEST_ADDRS addresses (default 10,000), interleaved, appended to
// the watched file at once; one op ends when the committed read position
// reaches the end. ci/bench-load.sh measures the whole agent.
func BenchmarkIngestChurn(b *testing.B) {
	addrs := 10000
	if n, err := strconv.Atoi(os.Getenv("PICKET_INGEST_ADDRS")); err == nil && n > 0 {
		addrs = n
	}
	p, err := schema.Default()
	if err != nil {
		b.Fatal(err)
	}
	p.Learning.Period = 0
	var buf []byte
	now := time.Now().UTC()
	for r := 0; r < 20; r++ {
		for a := 0; a < addrs; a++ {
			buf = fmt.Appendf(buf, "%s bench sshd[%d]: Failed password for invalid user u%d from 198.18.%d.%d port %d ssh2\n",
				now.Format("2006-01-02T15:04:05.000000-07:00"), 1000+a%3000, r, a>>8, a&0xff, 30000+r)
		}
	}
	lines := 20 * addrs
	src := filepath.Join(b.TempDir(), "lines")
	if err := os.WriteFile(src, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	size := int64(len(buf))
	buf = nil // the agent's heap is what is measured (GOMEMLIMIT applies)
	runtime.GC()
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		logPath := filepath.Join(dir, "auth.log")
		if err := os.WriteFile(logPath, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		ready := make(chan struct{}, 1)
		a, err := New(Config{Version: "bench", StateDir: filepath.Join(dir, "state"), Notifier: readyNote(ready),
			Policy: func(context.Context) (*schema.Policy, ConfigStatus, error) {
				return p, ConfigStatus{Source: "bench"}, nil
			},
			Sensors: func(ctx context.Context, p *schema.Policy, pos *state.Store) ([]sensor.Sensor, []SensorStatus) {
				return []sensor.Sensor{&sensor.AuthFile{Path: logPath, Poll: 10 * time.Millisecond}}, []SensorStatus{{Name: "auth", State: SensorOK}}
			}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		<-ready
		st, err := state.OpenReadOnly(ctx, filepath.Join(dir, "state"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if err := os.Rename(src, logPath); err != nil {
			b.Fatal(err)
		}
		for {
			var pos tail.Position
			if ok, _ := st.Offset(ctx, (&sensor.AuthFile{Path: logPath}).Name(), &pos); ok && pos.Offset >= size {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling the store: the agent runs on its own
		}
		elapsed += time.Since(t0)
		b.StopTimer()
		if path := os.Getenv("PICKET_INGEST_HEAPPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		st.Close()
		cancel()
		if i+1 < b.N {
			b.Fatal("one op per run: the input file is moved into place (use -benchtime 1x)")
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines*b.N)/elapsed.Seconds(), "lines/s")
}

type readyNote chan struct{}

func (r readyNote) Notify(s string) error {
	if s == "READY=1" || len(s) > 7 && s[:8] == "READY=1\n" {
		select {
		case r <- struct{}{}:
		default:
		}
	}
	return nil
}
func (readyNote) WatchdogInterval() time.Duration { return 0 }
