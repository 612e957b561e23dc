package tail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// harness runs a Follower in the background and collects its lines.
type harness struct {
	t      *testing.T
	f      *Follower
	lines  chan Line
	cancel context.CancelFunc
	done   chan error
}

func startFollower(t *testing.T, f *Follower) *harness {
	t.Helper()
	if f.Poll == 0 {
		f.Poll = 20 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, f: f, lines: make(chan Line, 1000), cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- f.Run(ctx, func(l Line) error { h.lines <- l; return nil })
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

// stop cancels Run and returns its error (once; later calls return nil).
func (h *harness) stop() error {
	h.t.Helper()
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return after cancel")
		return nil
	}
}

// expect reads exactly the given lines, in order, and returns them.
func (h *harness) expect(texts ...string) []Line {
	h.t.Helper()
	var got []Line
	for _, want := range texts {
		select {
		case l := <-h.lines:
			if l.Text != want {
				h.t.Fatalf("line %d: got %q, want %q (so far %v)", len(got), l.Text, want, got)
			}
			got = append(got, l)
		case <-time.After(5 * time.Second):
			h.t.Fatalf("timeout waiting for %q; got %v", want, got)
		}
	}
	return got
}

// expectNothing checks that no line arrives for a while.
func (h *harness) expectNothing(d time.Duration) {
	h.t.Helper()
	select {
	case l := <-h.lines:
		h.t.Fatalf("unexpected line %+v", l)
	case <-time.After(d):
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// modes runs a test with inotify wakeups and with polling alone.
func modes(t *testing.T, fn func(t *testing.T, noNotify bool)) {
	t.Run("notify", func(t *testing.T) { fn(t, false) })
	t.Run("poll", func(t *testing.T) { fn(t, true) })
}

func TestAppend(t *testing.T) {
	modes(t, func(t *testing.T, noNotify bool) {
		path := filepath.Join(t.TempDir(), "x.log")
		appendFile(t, path, "a\nbb\r\n")
		h := startFollower(t, &Follower{Path: path, NoNotify: noNotify})
		got := h.expect("a", "bb")
		if got[0].Pos.Offset != 2 || got[1].Pos.Offset != 6 {
			t.Fatalf("offsets %d %d, want 2 6", got[0].Pos.Offset, got[1].Pos.Offset)
		}
		appendFile(t, path, "ccc\n")
		got = h.expect("ccc")
		if got[0].Pos.Offset != 10 || got[0].Pos.Inode == 0 {
			t.Fatalf("pos %+v", got[0].Pos)
		}
		s := h.f.Stats()
		if s.Lines != 3 || s.Bytes != 10 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestStartAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "old1\nold2\n")
	h := startFollower(t, &Follower{Path: path, StartAtEnd: true})
	h.expectNothing(100 * time.Millisecond)
	appendFile(t, path, "new\n")
	if got := h.expect("new"); got[0].Pos.Offset != 14 {
		t.Fatalf("pos %+v", got[0].Pos)
	}
}

func TestPartialLine(t *testing.T) {
	modes(t, func(t *testing.T, noNotify bool) {
		path := filepath.Join(t.TempDir(), "x.log")
		appendFile(t, path, "first\nhel")
		h := startFollower(t, &Follower{Path: path, NoNotify: noNotify})
		h.expect("first")
		h.expectNothing(150 * time.Millisecond)
		appendFile(t, path, "lo")
		h.expectNothing(100 * time.Millisecond)
		appendFile(t, path, " world\nnext\n")
		got := h.expect("hello world", "next")
		if got[0].Pos.Offset != 18 {
			t.Fatalf("pos %+v", got[0].Pos)
		}
	})
}

func TestRenameRotation(t *testing.T) {
	modes(t, func(t *testing.T, noNotify bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "x.log")
		// The writer keeps its descriptor across the rename, like a daemon
		// that has not yet been told to reopen.
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.WriteString("1\n2\n")
		h := startFollower(t, &Follower{Path: path, NoNotify: noNotify})
		old := h.expect("1", "2")[1].Pos

		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		// Lines after the rename, before the follower switches, and a
		// partial last line that will never be completed.
		w.WriteString("3\n4\n")
		// An empty new file (logrotate create mode) must not make us leave
		// the old one yet.
		appendFile(t, path, "")
		time.Sleep(60 * time.Millisecond)
		w.WriteString("5\npartial")
		appendFile(t, path, "new1\nnew2\n")

		got := h.expect("3", "4", "5", "partial", "new1", "new2")
		if got[3].Pos.Inode != old.Inode || got[4].Pos.Inode == old.Inode {
			t.Fatalf("inodes: partial %+v new1 %+v old %+v", got[3].Pos, got[4].Pos, old)
		}
		if got[4].Pos.Offset != 5 {
			t.Fatalf("new1 pos %+v", got[4].Pos)
		}
		if s := h.f.Stats(); s.Rotations != 1 {
			t.Fatalf("stats %+v", s)
		}
		h.expectNothing(50 * time.Millisecond)
	})
}

func TestCopyTruncate(t *testing.T) {
	modes(t, func(t *testing.T, noNotify bool) {
		path := filepath.Join(t.TempDir(), "x.log")
		appendFile(t, path, "line one\nline two\n")
		h := startFollower(t, &Follower{Path: path, NoNotify: noNotify})
		first := h.expect("line one", "line two")

		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path+".1", data, 0o644)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "truncate detected", func() bool { return h.f.Stats().Truncates == 1 })
		appendFile(t, path, "after\n")
		got := h.expect("after")
		if got[0].Pos.Offset != 6 || got[0].Pos.Inode != first[0].Pos.Inode {
			t.Fatalf("pos %+v", got[0].Pos)
		}
		if s := h.f.Stats(); s.Rotations != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestRestartFromPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "1\n2\n3\n")
	h := startFollower(t, &Follower{Path: path})
	got := h.expect("1", "2", "3")
	// The caller had only committed line 2 when it stopped.
	saved := got[1].Pos
	if err := h.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	appendFile(t, path, "4\n")

	h2 := startFollower(t, &Follower{Path: path, Start: saved, StartAtEnd: true})
	h2.expect("3", "4")
	h2.expectNothing(100 * time.Millisecond)
}

func TestRestartAfterRotation(t *testing.T) {
	for _, suffix := range []string{".1", "-20240101"} {
		t.Run(suffix, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.log")
			appendFile(t, path, "1\n2\n")
			// Noise in the same directory.
			appendFile(t, filepath.Join(dir, "other.log"), "zzz\n")
			h := startFollower(t, &Follower{Path: path})
			saved := h.expect("1", "2")[1].Pos
			h.stop()

			// While stopped: one more line, rotation, new file.
			appendFile(t, path, "3\n")
			if err := os.Rename(path, path+suffix); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, "4\n5\n")

			h2 := startFollower(t, &Follower{Path: path, Start: saved})
			got := h2.expect("3", "4", "5")
			if got[0].Pos.Inode != saved.Inode || got[1].Pos.Inode == saved.Inode {
				t.Fatalf("positions %+v", got)
			}
			h2.expectNothing(50 * time.Millisecond)
		})
	}
}

func TestRestartOldFileGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	appendFile(t, path, "1\n")
	h := startFollower(t, &Follower{Path: path})
	saved := h.expect("1")[0].Pos
	h.stop()
	os.Remove(path)
	appendFile(t, path, "new\n")
	// Make sure the new file does not reuse the old inode number (tmpfs
	// may hand it out again); if it does, this becomes the same-file case.
	if fi, _ := os.Stat(path); sameFile(fi, saved.Dev, saved.Inode) {
		t.Skip("inode reused")
	}
	h2 := startFollower(t, &Follower{Path: path, Start: saved})
	h2.expect("new")
}

func TestRestartTruncatedWhileStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "aaaa\nbbbb\n")
	h := startFollower(t, &Follower{Path: path})
	saved := h.expect("aaaa", "bbbb")[1].Pos
	h.stop()
	os.Truncate(path, 0)
	appendFile(t, path, "c\n")
	h2 := startFollower(t, &Follower{Path: path, Start: saved})
	h2.expect("c")
	if s := h2.f.Stats(); s.Truncates != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFileAppearsLater(t *testing.T) {
	modes(t, func(t *testing.T, noNotify bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "later.log")
		// StartAtEnd applies to a file that exists at start; one created
		// afterwards is new content and read from its beginning.
		h := startFollower(t, &Follower{Path: path, StartAtEnd: true, NoNotify: noNotify})
		h.expectNothing(100 * time.Millisecond)
		appendFile(t, path, "hello\n")
		h.expect("hello")
		// It disappears and comes back (deleted, recreated): follow it.
		os.Remove(path)
		time.Sleep(50 * time.Millisecond)
		appendFile(t, path, "again\n")
		h.expect("again")
	})
}

func TestLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	long := strings.Repeat("x", 100)
	appendFile(t, path, long+"\nshort\n")
	h := startFollower(t, &Follower{Path: path, MaxLine: 16})
	got := h.expect(long[:16], "short")
	if got[0].Pos.Offset != 101 {
		t.Fatalf("pos %+v", got[0].Pos)
	}
	// A long line arriving in pieces, longer than the read buffer.
	huge := strings.Repeat("y", 3*readBufSize)
	appendFile(t, path, huge[:10])
	time.Sleep(50 * time.Millisecond)
	appendFile(t, path, huge[10:]+"\nend\n")
	h.expect(huge[:16], "end")
	if s := h.f.Stats(); s.Truncated != 2 || s.Lines != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDefaultMaxLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, strings.Repeat("z", DefaultMaxLine+10)+"\n")
	h := startFollower(t, &Follower{Path: path})
	h.expect(strings.Repeat("z", DefaultMaxLine))
}

func TestCancel(t *testing.T) {
	for _, exists := range []bool{true, false} {
		t.Run(fmt.Sprint("exists=", exists), func(t *testing.T) {
			before := runtime.NumGoroutine()
			path := filepath.Join(t.TempDir(), "x.log")
			if exists {
				appendFile(t, path, "a\n")
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			f := &Follower{Path: path, Poll: time.Hour}
			go func() { done <- f.Run(ctx, func(Line) error { return nil }) }()
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || err != context.Canceled {
					t.Fatalf("Run = %v, want context.Canceled", err)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("cancel took %v", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
		})
	}
}

func TestEmitError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	appendFile(t, path, "a\nb\n")
	boom := errors.New("boom")
	var n int
	err := (&Follower{Path: path}).Run(context.Background(), func(l Line) error {
		n++
		return boom
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Run = %v after %d lines", err, n)
	}
}

func BenchmarkFollow(b *testing.B) {
	const lines = 200_000
	path := filepath.Join(b.TempDir(), "big.log")
	line := `203.0.113.7 - - [10/Oct/2025:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326 "-" "Mozilla/5.0"` + "\n"
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	buf := []byte(strings.Repeat(line, 1000))
	for i := 0; i < lines/1000; i++ {
		fh.Write(buf)
	}
	fh.Close()
	b.SetBytes(int64(lines * len(line)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		f := &Follower{Path: path}
		f.Run(ctx, func(Line) error {
			if n++; n == lines {
				cancel()
			}
			return nil
		})
		cancel()
		if n != lines {
			b.Fatalf("got %d lines", n)
		}
	}
	b.ReportMetric(float64(b.N*lines)/time.Since(start).Seconds(), "lines/s")
}
