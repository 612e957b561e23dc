package proc

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// benchDuration is how long BenchmarkExecRate drives load
// (PICKET_BENCH_EXEC_SECONDS overrides).
func benchDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("PICKET_BENCH_EXEC_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 5 * time.Second
}

// BenchmarkExecRate runs one `while :; do /bin/true; done` shell per CPU
// for a fixed time while a connector-mode Source consumes, and reports:
// execs/s seen, events lost, the fraction of the shells' /bin/true execs
// captured with exe and args (they live well under a millisecond), and
// exec→emit latency (kernel timestamp to the emit call) p50/p99.
func BenchmarkExecRate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (netlink proc connector)")
	}
	trueBin := "/bin/true"
	if _, err := os.Stat(trueBin); err != nil {
		b.Skip("no /bin/true")
	}
	for i := 0; i < b.N; i++ {
		if i > 0 {
			continue // one fixed-duration run carries the figures
		}
		runExecRate(b, trueBin, benchDuration())
	}
}

func runExecRate(b *testing.B, trueBin string, d time.Duration) {
	var (
		mu                            sync.Mutex
		shells                        = map[int]bool{}
		latencies                     []time.Duration
		targets                       int // execs whose parent is one of the shells
		captured                      int // ... with exe and args read
		execs                         int
		measuring                     bool
		withExe, withArgs, withStatus int
	)
	emit := func(ev event.Event) {
		if ev.Kind != event.ProcExec || ev.Detail != "" {
			return
		}
		lat := time.Since(ev.Time)
		mu.Lock()
		defer mu.Unlock()
		if !measuring {
			return
		}
		execs++
		latencies = append(latencies, lat)
		if shells[ev.Proc.PPID] {
			targets++
			if ev.Proc.Exe != "" && len(ev.Proc.Args) > 0 {
				captured++
			}
			if ev.Proc.Exe != "" {
				withExe++
			}
			if len(ev.Proc.Args) > 0 {
				withArgs++
			}
			if ev.Proc.UID == 0 && ev.Proc.Comm != "" {
				withStatus++
			}
		}
	}
	s := &Source{Mode: ModeConnector}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, emit) }()
	for s.ActiveMode() == "" {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the initial scan finish
	before := s.Stats()

	b.ResetTimer()
	mu.Lock()
	measuring = true
	mu.Unlock()
	started := time.Now()
	var cmds []*exec.Cmd
	for range runtime.NumCPU() {
		cmd := exec.Command("/bin/sh", "-c", "while :; do "+trueBin+"; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		shells[cmd.Process.Pid] = true
		mu.Unlock()
		cmds = append(cmds, cmd)
	}
	time.Sleep(d)
	for _, cmd := range cmds {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
	elapsed := time.Since(started)
	time.Sleep(500 * time.Millisecond) // drain what the kernel queued
	mu.Lock()
	measuring = false
	mu.Unlock()
	b.StopTimer()
	after := s.Stats()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	frac := 0.0
	if targets > 0 {
		frac = float64(captured) / float64(targets)
	}
	b.ReportMetric(float64(execs)/elapsed.Seconds(), "execs/s")
	b.ReportMetric(float64(after.Lost-before.Lost), "lost")
	b.ReportMetric(float64(after.Overflows-before.Overflows), "overflows")
	b.ReportMetric(frac, "captured_frac")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(after.Partial-before.Partial), "partial")
	b.Logf("%d execs in %v (%d from the loops, %d with exe+args, %d exe, %d args, %d stat+status), stats %+v",
		execs, elapsed.Round(time.Millisecond), targets, captured, withExe, withArgs, withStatus, after)
}

// BenchmarkRead is the cost of one exec's /proc read (this process).
func BenchmarkRead(b *testing.B) {
	r := NewReader("/proc", NewUsers(""))
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(pid); err != nil {
			b.Fatal(err)
		}
	}
}
