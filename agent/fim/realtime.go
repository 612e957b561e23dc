package fim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/state"
)

// maxPending bounds the paths waiting for a check; beyond it (a flood of
// changes) the scanner forgets them and rescans instead.
const maxPending = 65536

// realtime is the inotify side: the watches, the paths waiting for their
// debounce, and what status reports.
type realtime struct {
	mu        sync.Mutex
	w         *fsnotify.Watcher
	max       int             // watch cap (0: the kernel's)
	watched   map[string]bool // directories with a watch
	limited   bool            // the watch limit was hit
	limitErr  string
	unwatched map[string]bool // top-most directories without a watch: rescanned every FallbackInterval
	pending   map[string]time.Time
	rescan    bool // events were lost (queue overflow, pending cap): rescan everything
	// wake tells the run loop that pending or rescan changed, so it arms
	// its debounce timer only then: an idle host costs no wake-ups.
	wake      chan struct{}
	failed    string // realtime could not start
	lastScan  time.Time
	scanErr   string
	events    atomic.Int64
	checks    atomic.Int64
	overflows atomic.Int64
}

func (r *realtime) init() {
	r.watched = map[string]bool{}
	r.unwatched = map[string]bool{}
	r.pending = map[string]time.Time{}
	r.wake = make(chan struct{}, 1)
}

// poke wakes the run loop without blocking (one pending wake is enough).
func (r *realtime) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// watch adds an inotify watch on dir, unless realtime is off or the limit
// was reached; directories left without one are remembered for the
// fallback scans.
func (r *realtime) watch(dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil || r.watched[dir] {
		return
	}
	if !r.limited && r.max > 0 && len(r.watched) >= r.max {
		r.limited = true
		r.limitErr = fmt.Sprintf("configured maximum of %d watches", r.max)
	}
	if !r.limited {
		err := r.w.Add(dir)
		switch {
		case err == nil:
			r.watched[dir] = true
			delete(r.unwatched, dir)
			return
		case errors.Is(err, syscall.ENOSPC):
			r.limited = true
			r.limitErr = fmt.Sprintf("fs.inotify.max_user_watches=%s reached", readSysctl("/proc/sys/fs/inotify/max_user_watches"))
		default:
			return // gone, or unreadable: the scans cover it
		}
	}
	for c, p := dir, filepath.Dir(dir); p != c && p != "/" && p != "."; c, p = p, filepath.Dir(p) {
		if r.unwatched[p] {
			return
		}
	}
	r.unwatched[dir] = true
}

func readSysctl(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "?"
	}
	return string(b[:len(b)-1])
}

// Name is the sensor's name.
func (s *Scanner) Name() string { return "files" }

// Run is the sensor: a full scan (the baseline on first run), then inotify
// checks, full rescans every Interval, and rescans of the directories
// without a watch every FallbackInterval when the watch limit was hit.
func (s *Scanner) Run(ctx context.Context, out chan<- sensor.Item) error {
	emit := func(ev event.Event) {
		select {
		case out <- sensor.Item{Event: &ev}:
		case <-ctx.Done():
		}
	}
	return s.run(ctx, emit)
}

func (s *Scanner) run(ctx context.Context, emit func(event.Event)) error {
	if s.opts.Realtime {
		w, err := fsnotify.NewBufferedWatcher(4096)
		s.rt.mu.Lock()
		if err != nil {
			s.rt.failed = err.Error()
		} else {
			s.rt.w, s.rt.max = w, s.opts.MaxWatches
		}
		s.rt.mu.Unlock()
		if w != nil {
			defer w.Close()
			go s.collect(ctx, w)
		}
	}
	s.fullScan(ctx, emit)
	full := time.NewTicker(s.opts.Interval)
	defer full.Stop()
	fallback := time.NewTicker(s.opts.FallbackInterval)
	defer fallback.Stop()
	// The debounce timer runs only while paths wait for their check.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-full.C:
			s.fullScan(ctx, emit)
		case <-fallback.C:
			s.rt.mu.Lock()
			dirs := make([]string, 0, len(s.rt.unwatched))
			for d := range s.rt.unwatched {
				dirs = append(dirs, d)
			}
			s.rt.mu.Unlock()
			sort.Strings(dirs)
			for _, d := range dirs {
				s.checkPath(ctx, d, emit)
			}
		case <-s.rt.wake:
			if !armed {
				debounce.Reset(s.opts.Debounce)
				armed = true
			}
		case <-debounce.C:
			armed = false
			s.rt.mu.Lock()
			rescan := s.rt.rescan
			s.rt.rescan = false
			var due []string
			now := time.Now()
			next := time.Duration(-1) // until the earliest path still waiting
			for p, t := range s.rt.pending {
				if left := s.opts.Debounce - now.Sub(t); left <= 0 {
					due = append(due, p)
					delete(s.rt.pending, p)
				} else if next < 0 || left < next {
					next = left
				}
			}
			s.rt.mu.Unlock()
			if next >= 0 {
				debounce.Reset(next)
				armed = true
			}
			if rescan {
				s.fullScan(ctx, emit)
				continue
			}
			sort.Strings(due)
			for _, p := range due {
				s.checkPath(ctx, p, emit)
			}
		}
	}
}

func (s *Scanner) fullScan(ctx context.Context, emit func(event.Event)) {
	err := s.Scan(ctx, emit)
	s.rt.mu.Lock()
	s.rt.lastScan = time.Now()
	s.rt.scanErr = ""
	if err != nil && ctx.Err() == nil {
		s.rt.scanErr = err.Error()
	}
	s.rt.mu.Unlock()
}

// collect queues inotify events' paths for the run loop; it never blocks
// on the loop, so a long scan cannot make the kernel queue overflow.
func (s *Scanner) collect(ctx context.Context, w *fsnotify.Watcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			s.rt.mu.Lock()
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// inotify drops the watch of a removed directory itself.
				delete(s.rt.watched, ev.Name)
			}
			if len(s.rt.pending) >= maxPending {
				s.rt.rescan = true
				clear(s.rt.pending)
			}
			if !s.rt.rescan {
				s.rt.pending[ev.Name] = time.Now()
			}
			s.rt.mu.Unlock()
			s.rt.poke()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				s.rt.overflows.Add(1)
				s.rt.mu.Lock()
				s.rt.rescan = true
				s.rt.mu.Unlock()
				s.rt.poke()
			}
			s.opts.Logger.Warn("fim: inotify", "err", err)
		}
	}
}

// checkPath re-examines one path after an inotify event: a directory is
// scanned (new directories get watches and their files are reported), a
// file is compared with its row, a path that is gone is reported deleted
// with everything that was below it.
func (s *Scanner) checkPath(ctx context.Context, p string, emit func(event.Event)) {
	s.rt.checks.Add(1)
	if excluded(p, s.opts.Excludes) || !s.inRoots(p) {
		return
	}
	info, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		s.rt.mu.Lock()
		delete(s.rt.unwatched, p)
		s.rt.mu.Unlock()
		s.removed(ctx, p, emit)
		return
	}
	if err != nil {
		return
	}
	if info.IsDir() {
		if err := s.scanTree(ctx, p, false, emit); err != nil && ctx.Err() == nil {
			s.opts.Logger.Debug("fim: scan", "path", p, "err", err)
		}
		return
	}
	if !info.Mode().IsRegular() && info.Mode()&fs.ModeSymlink == 0 {
		return
	}
	old, ok, err := s.store.File(ctx, p)
	if err != nil {
		return
	}
	meta := metaOf(p, info)
	if ok && unchanged(old, meta) {
		return
	}
	r := s.hashJob(ctx, job{path: p, meta: meta, old: old, hadOld: ok, keep: s.classifiable(p, meta.Size)}, make([]byte, 64<<10))
	if r.err != nil {
		if errors.Is(r.err, fs.ErrNotExist) {
			s.removed(ctx, p, emit)
		}
		return
	}
	s.report(old, ok, r.row, r.content, "inotify", emit)
	if err := s.store.PutFiles(ctx, []state.FileRow{r.row}); err != nil {
		s.opts.Logger.Warn("fim: store", "path", p, "err", err)
	}
}

// removed reports p and every row below it as deleted.
func (s *Scanner) removed(ctx context.Context, p string, emit func(event.Event)) {
	var gone []state.FileRow
	if r, ok, err := s.store.File(ctx, p); err == nil && ok {
		gone = append(gone, r)
	}
	_ = s.store.FilesWithPrefix(ctx, p+"/", func(r state.FileRow) error { gone = append(gone, r); return nil })
	paths := make([]string, 0, len(gone))
	for _, r := range gone {
		s.report(r, true, state.FileRow{}, nil, "inotify", emit)
		paths = append(paths, r.Path)
	}
	if err := s.store.DeleteFiles(ctx, paths); err != nil {
		s.opts.Logger.Warn("fim: store", "path", p, "err", err)
	}
}

// inRoots reports whether p is a configured root or below one. Lexical, so
// that a root file that was just deleted still counts.
func (s *Scanner) inRoots(p string) bool {
	for _, r := range s.opts.Roots {
		r = filepath.Clean(r)
		for q := p; ; q = filepath.Dir(q) {
			if ok, _ := filepath.Match(r, q); ok {
				return true
			}
			if q == "/" || q == "." {
				break
			}
		}
		if real, err := filepath.EvalSymlinks(r); err == nil && within(p, real) {
			return true
		}
	}
	return false
}

// Live reports for status: the initial scan's progress while it runs,
// then the realtime mode; degraded when inotify is off or out of watches.
func (s *Scanner) Live() (degraded bool, detail string) {
	p := s.Progress()
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	var mode string
	switch {
	case !s.opts.Realtime:
		mode = fmt.Sprintf("periodic scans only (every %s)", s.opts.Interval)
	case s.rt.failed != "":
		degraded = true
		mode = fmt.Sprintf("inotify unavailable (%s): periodic scans only (every %s)", s.rt.failed, s.opts.Interval)
	case s.rt.limited:
		degraded = true
		mode = fmt.Sprintf("inotify watch limit hit (%s): %d directories watched, %d subtrees without a watch rescanned every %s",
			s.rt.limitErr, len(s.rt.watched), len(s.rt.unwatched), s.opts.FallbackInterval)
	default:
		mode = fmt.Sprintf("inotify on %d directories, full rescan every %s", len(s.rt.watched), s.opts.Interval)
	}
	detail = p.String() + "; " + mode
	if n := s.rt.overflows.Load(); n > 0 {
		detail += fmt.Sprintf("; %d inotify overflows (rescanned)", n)
	}
	if s.rt.scanErr != "" {
		degraded = true
		detail += "; last scan failed: " + s.rt.scanErr
	}
	detail += fmt.Sprintf("; %d changes reported", s.rt.events.Load())
	return degraded, detail
}
