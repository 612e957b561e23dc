package tail

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestAdaptivePoll: with the default Poll, a missing file that cannot be
// watched is looked for less and less often (never more than every 5s);
// once its directory appears it is watched and only a 10s backstop poll
// is left; an explicit Poll is kept exactly.
func TestAdaptivePoll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Skip("no inotify: ", err)
	}
	defer w.Close()
	r := &run{f: &Follower{Path: filepath.Join(dir, "x.log")}, poll: DefaultPoll, adaptive: true, watcher: w, log: slog.New(slog.DiscardHandler)}
	var got []time.Duration
	for range 7 {
		got = append(got, r.interval())
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("missing file back-off %v, want %v", got, want)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if d := r.interval(); d != notifiedPoll || r.events == nil {
		t.Fatalf("after the directory appeared: %v, watching %v", d, r.events != nil)
	}
	// The watch works: a file created there is reported.
	os.WriteFile(r.f.Path, []byte("x\n"), 0o644)
	select {
	case ev := <-r.events:
		if ev.Name != r.f.Path {
			t.Fatalf("event for %s", ev.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification from the new watch")
	}
	fixed := &run{f: &Follower{Path: r.f.Path}, poll: 20 * time.Millisecond}
	if d := fixed.interval(); d != 20*time.Millisecond {
		t.Fatalf("explicit poll became %v", d)
	}
}
