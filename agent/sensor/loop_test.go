package sensor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestLoopDebouncesABurst(t *testing.T) {
	dir := t.TempDir()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int32
	l := &Loop{Watcher: w, Interval: time.Hour, Debounce: 150 * time.Millisecond,
		Interesting: func(name string) bool { return filepath.Base(name) != "ignored" },
		Check:       func() error { checks.Add(1); return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	os.WriteFile(filepath.Join(dir, "ignored"), []byte("x"), 0o600)
	time.Sleep(300 * time.Millisecond)
	if n := checks.Load(); n != 0 {
		t.Fatalf("an uninteresting change caused %d checks", n)
	}
	for i := 0; i < 5; i++ {
		os.WriteFile(filepath.Join(dir, "passwd"), []byte{byte(i)}, 0o600)
	}
	time.Sleep(500 * time.Millisecond)
	if n := checks.Load(); n != 1 {
		t.Fatalf("a burst of 5 writes caused %d checks, want 1", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

func TestLoopTicksWithoutWatcherAndStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	var checks atomic.Int32
	l := &Loop{Interval: 20 * time.Millisecond, Debounce: time.Millisecond,
		Check: func() error {
			if checks.Add(1) == 3 {
				return boom
			}
			return nil
		}}
	if err := l.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the check's error", err)
	}
	if checks.Load() != 3 {
		t.Fatalf("%d checks", checks.Load())
	}
}
