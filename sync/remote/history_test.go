package remote

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/gittest"
)

// procStatus returns VmHWM and VmRSS of this process in bytes.
func procStatus(t testing.TB) (hwm, rss int64) {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmHWM" {
			hwm = n << 10
		} else {
			rss = n << 10
		}
	}
	return hwm, rss
}

// resetPeak resets VmHWM to the current RSS (Linux: clear_refs 5), so the
// next reading is the peak of what follows, not of earlier tests.
func resetPeak() bool {
	runtime.GC()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

type fetchFigures struct {
	elapsed          time.Duration
	peakRSS, baseRSS int64
	alloc            uint64
}

func (f fetchFigures) String() string {
	return fmt.Sprintf("%v, peak RSS %.1f MiB (+%.1f MiB over %.1f MiB before), %.1f MiB allocated",
		f.elapsed.Round(time.Millisecond), float64(f.peakRSS)/(1<<20), float64(f.peakRSS-f.baseRSS)/(1<<20),
		float64(f.baseRSS)/(1<<20), float64(f.alloc)/(1<<20))
}

func measureFetch(t testing.TB, r *Remote) fetchFigures {
	t.Helper()
	okPeak := resetPeak()
	_, base := procStatus(t)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&m1)
	hwm, _ := procStatus(t)
	if !okPeak {
		hwm = 0
	}
	return fetchFigures{elapsed: elapsed, peakRSS: hwm, baseRSS: base, alloc: m1.TotalAlloc - m0.TotalAlloc}
}

// TestFetchLongHistory fetches a 5,000-commit repository over HTTP, then
// 200 more commits, and reports time and peak RSS of this process (the git
// server runs in child processes and is not counted).
func TestFetchLongHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("long history in -short mode")
	}
	root := t.TempDir()
	bare := gittest.NewBareRepo(t, filepath.Join(root, "config.git"))
	start := time.Now()
	bare.FastImport(t, "main", 5000)
	t.Logf("fast-import of 5000 commits: %v", time.Since(start).Round(time.Millisecond))
	srv := gittest.ServeHTTP(t, root, gittest.ServerOptions{})
	r := open(t, Config{URL: srv.URL("config.git"), Retry: fastRetry})

	full := measureFetch(t, r)
	t.Logf("initial fetch of 5000 commits: %v", full)
	head := bare.FastImport(t, "main", 200)
	inc := measureFetch(t, r)
	t.Logf("incremental fetch of 200 commits: %v", inc)
	if ref, err := r.Repo().Reference(TrackingRef("main"), true); err != nil || ref.Hash().String() != head {
		t.Fatalf("tracking ref %v %v, want %s", ref, err, head)
	}
	// Every commit of the history is readable from the local clone.
	c, err := r.Repo().CommitObject(plumbingHash(head))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; c != nil && n < 6000; n++ {
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			t.Fatalf("walk at %d: %v", n, err)
		}
	}
	if n+1 != 5200 {
		t.Fatalf("history has %d commits, want 5200", n+1)
	}
	if raceEnabled {
		return // the race detector multiplies memory and time
	}
	if full.peakRSS > 0 && full.peakRSS-full.baseRSS > 150<<20 {
		t.Errorf("initial fetch grew RSS by %d MiB", (full.peakRSS-full.baseRSS)>>20)
	}
	if inc.peakRSS > 0 && inc.peakRSS-inc.baseRSS > 100<<20 {
		t.Errorf("incremental fetch grew RSS by %d MiB", (inc.peakRSS-inc.baseRSS)>>20)
	}
	if inc.elapsed > 5*time.Second {
		t.Errorf("incremental fetch took %v", inc.elapsed)
	}
}

// BenchmarkFetchIncremental: a fetch of 200 new commits on top of 5,000,
// over HTTP. Each iteration adds 200 commits (outside the timer) and fetches.
func BenchmarkFetchIncremental(b *testing.B) {
	root := b.TempDir()
	bare := gittest.NewBareRepo(b, filepath.Join(root, "config.git"))
	bare.FastImport(b, "main", 5000)
	srv := gittest.ServeHTTP(b, root, gittest.ServerOptions{})
	dir := filepath.Join(b.TempDir(), "repo")
	r, err := Open(Config{URL: srv.URL("config.git"), Dir: dir, Logger: quiet(), Retry: fastRetry})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Fetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bare.FastImport(b, "main", 200)
		resetPeak()
		b.StartTimer()
		if _, err := r.Fetch(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if hwm, _ := procStatus(b); hwm > peak {
			peak = hwm
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}
