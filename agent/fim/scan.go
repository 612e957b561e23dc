package fim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/webshell"
	"github.com/picket-agent/picket/state"
)

// Meta keys in the state database.
const (
	metaBaseline = "fim.baseline:" // + root: the root's first full scan completed (RFC 3339)
	metaTotals   = "fim.totals"    // files and bytes of the last full scan, for the next one's ETA
)

// Scanner hashes the watched roots and reports their changes. Scan and the
// realtime checks in Run are not meant to run concurrently with each other
// (Run serialises them); Progress, Stats and Live may be called any time.
type Scanner struct {
	opts  Options
	store *state.Store
	lim   *limiter
	prog  progress
	users *names

	hashed      atomic.Int64 // files read and hashed
	hashedBytes atomic.Int64
	skipped     atomic.Int64 // files skipped as unchanged
	errs        atomic.Int64 // files or directories that could not be read

	rt realtime
}

// New returns a Scanner storing rows in store.
func New(store *state.Store, opts Options) *Scanner {
	opts = opts.withDefaults()
	s := &Scanner{opts: opts, store: store, users: newNames()}
	if opts.RateMBps > 0 {
		s.lim = newLimiter(opts.RateMBps * 1e6)
	}
	s.rt.init()
	return s
}

// Stats are cumulative counters.
type Stats struct {
	Hashed      int64 // files read and hashed
	HashedBytes int64
	Skipped     int64 // files found unchanged by size, mtime, ctime and inode
	Errors      int64 // unreadable files and directories (logged)
	Events      int64 // change events emitted
}

// Stats returns the counters.
func (s *Scanner) Stats() Stats {
	return Stats{Hashed: s.hashed.Load(), HashedBytes: s.hashedBytes.Load(), Skipped: s.skipped.Load(),
		Errors: s.errs.Load(), Events: s.rt.events.Load()}
}

// Scan walks every root once: the first scan of a root records its
// baseline silently, later ones emit one event per change. It returns when
// every root is done or ctx ends.
func (s *Scanner) Scan(ctx context.Context, emit func(event.Event)) error {
	roots, missing := resolveRoots(s.opts.Roots)
	if len(missing) > 0 {
		s.opts.Logger.Debug("fim: roots not present", "roots", missing)
	}
	var prev struct{ Files, Bytes int64 }
	known, _ := s.store.MetaJSON(ctx, metaTotals, &prev)
	s.prog.start(time.Now(), prev.Files, prev.Bytes, known)
	if !known {
		// First scan ever: count first (metadata only, a fraction of the
		// hashing time) so the progress bar has a real total and ETA.
		go s.precount(ctx, roots)
	}
	var firstErr error
	for _, r := range roots {
		_, baselined, err := s.store.Meta(ctx, metaBaseline+r)
		if err != nil {
			return err
		}
		if err := s.scanTree(ctx, r, !baselined, emit); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.opts.Logger.Warn("fim: scan failed", "root", r, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !baselined {
			if err := s.store.Update(ctx, func(t *state.Tx) error {
				return t.SetMeta(ctx, metaBaseline+r, time.Now().UTC().Format(time.RFC3339))
			}); err != nil {
				return err
			}
		}
	}
	p := s.prog.finish(time.Now())
	if err := s.store.Update(ctx, func(t *state.Tx) error {
		return t.SetMetaJSON(ctx, metaTotals, struct{ Files, Bytes int64 }{p.Files, p.Bytes})
	}); err != nil {
		return err
	}
	return firstErr
}

// job is one file whose metadata differs from its row (or has none), or
// (gone) a row whose file no longer exists.
type job struct {
	path   string
	meta   state.FileRow
	old    state.FileRow
	hadOld bool
	keep   bool // keep the content for classification
	gone   bool // old's file is gone: report it deleted
	silent bool // old's path is excluded now: drop the row, no event
}

type result struct {
	job
	row     state.FileRow
	content []byte
	err     error
}

// scanTree scans one root (a configured root, a new directory found by
// inotify or a directory left without a watch); baseline suppresses
// events. The walk visits paths in byte order (see walker) and merges them
// with the stored rows read in the same order a page at a time, so memory
// stays constant whatever the number of files: a path without a row is
// new, a row without a path is gone.
func (s *Scanner) scanTree(ctx context.Context, root string, baseline bool, emit func(event.Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stamp := time.Now()
	jobs := make(chan job, 256)
	results := make(chan result, 256)
	w := &walker{s: s, ctx: ctx, jobs: jobs, baseline: baseline,
		cur: cursor{s: s.store, prefix: root + "/", after: root + "/", stamp: stamp}}
	var walkErr error
	go func() {
		defer close(jobs)
		lowerPriority(s.opts.Priority)
		walkErr = w.root(root)
	}()
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lowerPriority(s.opts.Priority)
			buf := make([]byte, 256<<10)
			for j := range jobs {
				var r result
				if j.gone {
					r = result{job: j}
				} else {
					r = s.hashJob(ctx, j, buf)
					r.row.Seen = stamp // the cursor skips what this scan wrote
				}
				select {
				case results <- r:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	puts := make([]state.FileRow, 0, s.opts.BatchSize)
	var dels []string
	var storeErr error
	flush := func() {
		if storeErr == nil {
			storeErr = s.store.PutFiles(ctx, puts)
		}
		if storeErr == nil {
			storeErr = s.store.DeleteFiles(ctx, dels)
		}
		puts, dels = puts[:0], dels[:0]
	}
	for r := range results {
		switch {
		case r.gone:
			if !r.silent && !baseline {
				s.report(r.old, true, state.FileRow{}, nil, "scan", emit)
			}
			dels = append(dels, r.old.Path)
		case r.err != nil:
			if errors.Is(r.err, fs.ErrNotExist) {
				// Gone between the walk and the read.
				if r.hadOld {
					if !baseline {
						s.report(r.old, true, state.FileRow{}, nil, "scan", emit)
					}
					dels = append(dels, r.old.Path)
				}
				continue
			}
			s.errs.Add(1)
			s.opts.Logger.Debug("fim: unreadable", "path", r.path, "err", r.err)
		default:
			if !baseline {
				s.report(r.old, r.hadOld, r.row, r.content, "scan", emit)
			}
			puts = append(puts, r.row)
		}
		if len(puts)+len(dels) >= s.opts.BatchSize {
			flush()
		}
	}
	flush()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if walkErr != nil {
		return walkErr
	}
	return storeErr
}

// walker walks a root in byte order of full paths and merges it with the
// stored rows. os.ReadDir sorts a directory by name; sorting directories
// as name+"/" makes the whole walk byte-ordered ("a-b" < "a/x" because
// '-' < '/'), the order of the files table's primary key.
type walker struct {
	s          *Scanner
	ctx        context.Context
	jobs       chan<- job
	baseline   bool
	cur        cursor
	unreadable []string // directories whose rows must not be taken as deleted
}

func (w *walker) root(root string) error {
	info, err := os.Lstat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		w.s.errs.Add(1)
		return err
	case !info.IsDir():
		// inotify on the directory, not the file: an editor's
		// rename-over-the-original would end a watch on the file itself.
		// Events for its siblings are dropped by checkPath.
		w.s.rt.watch(filepath.Dir(root))
	default:
		w.s.rt.watch(root)
		if err := w.dir(root); err != nil {
			return err
		}
	}
	// A root that is a file (/root/.bashrc) has its own row.
	old, hadOld, err := w.s.store.File(w.ctx, root)
	if err != nil {
		return err
	}
	if err == nil && info != nil && !info.IsDir() && (info.Mode().IsRegular() || info.Mode()&fs.ModeSymlink != 0) {
		if err := w.file(root, info, old, hadOld); err != nil {
			return err
		}
	} else if hadOld && !old.Seen.Equal(w.cur.stamp) {
		if err := w.send(job{path: root, old: old, gone: true}); err != nil {
			return err
		}
	}
	return w.until("") // what is left below the root is gone
}

func (w *walker) dir(p string) error {
	ents, err := os.ReadDir(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		w.s.errs.Add(1)
		w.s.opts.Logger.Debug("fim: unreadable", "path", p, "err", err)
		w.unreadable = append(w.unreadable, p)
		return nil
	}
	sort.Slice(ents, func(i, j int) bool { return sortKey(ents[i]) < sortKey(ents[j]) })
	for _, e := range ents {
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		full := p + "/" + e.Name()
		if p == "/" {
			full = "/" + e.Name()
		}
		if excluded(full, w.s.opts.Excludes) {
			continue // its rows, if any, are dropped by until
		}
		if e.IsDir() {
			w.s.rt.watch(full)
			if err := w.dir(full); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue // devices, sockets, fifos
		}
		info, err := e.Info()
		if err != nil {
			continue // gone since readdir: until reports it
		}
		if err := w.until(full); err != nil {
			return err
		}
		old, hadOld, err := w.cur.peek(w.ctx)
		if err != nil {
			return err
		}
		hadOld = hadOld && old.Path == full
		if hadOld {
			w.cur.pop()
		}
		if err := w.file(full, info, old, hadOld); err != nil {
			return err
		}
	}
	return nil
}

func sortKey(e fs.DirEntry) string {
	if e.IsDir() {
		return e.Name() + "/"
	}
	return e.Name()
}

// until consumes the rows before path ("" = all): their files are gone.
func (w *walker) until(path string) error {
	for {
		row, ok, err := w.cur.peek(w.ctx)
		if err != nil || !ok || (path != "" && row.Path >= path) {
			return err
		}
		w.cur.pop()
		if underAny(row.Path, w.unreadable) {
			continue
		}
		if err := w.send(job{path: row.Path, old: row, gone: true, silent: excluded(row.Path, w.s.opts.Excludes)}); err != nil {
			return err
		}
	}
}

func (w *walker) file(p string, info fs.FileInfo, old state.FileRow, hadOld bool) error {
	meta := metaOf(p, info)
	if hadOld && unchanged(old, meta) {
		w.s.skipped.Add(1)
		w.s.prog.add(1, meta.Size, 0)
		return nil
	}
	return w.send(job{path: p, meta: meta, old: old, hadOld: hadOld, keep: !w.baseline && w.s.classifiable(p, meta.Size)})
}

func (w *walker) send(j job) error {
	select {
	case w.jobs <- j:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// cursor reads the stored rows below a prefix in path order, a page at a
// time. Rows stamped with this scan's start were written by the scan
// itself (for paths the walk has passed) and are skipped.
type cursor struct {
	s      *state.Store
	prefix string
	after  string
	stamp  time.Time
	page   []state.FileRow
	done   bool
}

const pageSize = 512

func (c *cursor) peek(ctx context.Context) (state.FileRow, bool, error) {
	for len(c.page) == 0 {
		if c.done {
			return state.FileRow{}, false, nil
		}
		page, err := c.s.FilesPage(ctx, c.prefix, c.after, pageSize)
		if err != nil {
			return state.FileRow{}, false, err
		}
		if len(page) < pageSize {
			c.done = true
		}
		if len(page) > 0 {
			c.after = page[len(page)-1].Path
		}
		for _, r := range page {
			if !r.Seen.Equal(c.stamp) {
				c.page = append(c.page, r)
			}
		}
	}
	return c.page[0], true, nil
}

func (c *cursor) pop() { c.page = c.page[1:] }

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if within(p, d) {
			return true
		}
	}
	return false
}

func (s *Scanner) classifiable(p string, size int64) bool {
	return size <= webshell.MaxClassifySize && webshell.IsScript(p) && underAny(p, s.opts.WebRoots)
}

// metaOf fills a row's metadata from lstat.
func metaOf(p string, info fs.FileInfo) state.FileRow {
	r := state.FileRow{Path: p, Size: info.Size(), Mode: uint32(info.Mode().Perm())}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		r.Mode = st.Mode
		r.MtimeNS = st.Mtim.Nano()
		r.CtimeNS = st.Ctim.Nano()
		r.Inode = st.Ino
		r.Dev = st.Dev
		r.UID = st.Uid
		r.GID = st.Gid
	}
	return r
}

// unchanged: same size, mtime, ctime, inode and device. Any write moves
// mtime and ctime, chmod and chown move ctime, a replacement changes the
// inode: only a deliberate forging of both times (which needs root and
// changing the clock, since ctime cannot be set) goes unnoticed.
func unchanged(old, now state.FileRow) bool {
	return old.Size == now.Size && old.MtimeNS == now.MtimeNS && old.CtimeNS == now.CtimeNS &&
		old.Inode == now.Inode && old.Dev == now.Dev
}

// hashJob reads and hashes one file (or reads one link).
func (s *Scanner) hashJob(ctx context.Context, j job, buf []byte) result {
	r := result{job: j}
	row := j.meta
	row.Seen = time.Now()
	if row.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		target, err := os.Readlink(j.path)
		if err != nil {
			r.err = err
			return r
		}
		row.SHA256 = "link:" + target
		r.row = row
		s.prog.add(1, 0, 0)
		return r
	}
	if row.Size > s.opts.MaxHashSize {
		r.row = row // metadata only
		s.prog.add(1, row.Size, 0)
		return r
	}
	// O_NOATIME: the scan must not touch what it watches (and atime writes
	// cost I/O); it needs ownership or CAP_FOWNER, hence the retry.
	// O_NONBLOCK: a fifo swapped in after the walk must not hang a worker.
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	fd, err := syscall.Open(j.path, flags|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) {
		fd, err = syscall.Open(j.path, flags, 0)
	}
	if err != nil {
		r.err = &fs.PathError{Op: "open", Path: j.path, Err: err}
		return r
	}
	f := os.NewFile(uintptr(fd), j.path)
	defer f.Close()
	// Metadata of what was opened: it describes the content hashed even
	// if the path changed since the walk.
	info, err := f.Stat()
	if err != nil {
		r.err = err
		return r
	}
	if !info.Mode().IsRegular() {
		r.err = fmt.Errorf("%s: no longer a regular file", j.path)
		return r
	}
	row = metaOf(j.path, info)
	row.Seen = time.Now()
	h := sha256.New()
	var content []byte
	var n int64
	for {
		// Book the bytes before reading them, so the limit holds at any
		// instant, not only on average.
		want := int64(len(buf))
		if left := info.Size() - n; left >= 0 && left < want {
			want = left
		}
		if err := s.lim.wait(ctx, int(want)); err != nil {
			r.err = err
			return r
		}
		k, err := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if j.keep && len(content) < webshell.MaxClassifySize {
				content = append(content, buf[:min(k, webshell.MaxClassifySize-len(content))]...)
			}
			n += int64(k)
			s.prog.add(0, int64(k), int64(k))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			r.err = err
			return r
		}
	}
	s.prog.add(1, 0, 0)
	s.hashed.Add(1)
	s.hashedBytes.Add(n)
	row.SHA256 = hex.EncodeToString(h.Sum(nil))
	r.row, r.content = row, content
	return r
}

// report compares a file's old and new rows and emits its changes. A zero
// now (empty path) means deleted.
func (s *Scanner) report(old state.FileRow, hadOld bool, now state.FileRow, content []byte, via string, emit func(event.Event)) {
	if now.Path == "" {
		s.emitChange(old, webshell.WhatDeleted, "removed", describe(old), "", nil, via, emit)
		return
	}
	if !hadOld {
		s.emitChange(now, webshell.WhatCreated, "added", "", describe(now), content, via, emit)
		return
	}
	if contentChanged(old, now) {
		s.emitChange(now, webshell.WhatChanged, "modified", describe(old), describe(now), content, via, emit)
	}
	if old.Mode != now.Mode {
		s.emitChange(now, webshell.WhatMode, "modified", modeString(old.Mode), modeString(now.Mode), nil, via, emit)
	}
	if old.UID != now.UID || old.GID != now.GID {
		s.emitChange(now, webshell.WhatOwner, "modified", s.users.owner(old.UID, old.GID), s.users.owner(now.UID, now.GID), nil, via, emit)
	}
}

// contentChanged compares hashes, or for rows recorded by metadata only
// (too big to hash), size and mtime.
func contentChanged(old, now state.FileRow) bool {
	if old.SHA256 != "" && now.SHA256 != "" {
		return old.SHA256 != now.SHA256
	}
	return old.SHA256 != now.SHA256 || old.Size != now.Size || old.MtimeNS != now.MtimeNS
}

// describe is what Before/After show: the hash (sha256:…), the link
// target, or size and mtime for a file recorded by metadata only.
func describe(r state.FileRow) string {
	switch {
	case strings.HasPrefix(r.SHA256, "link:"):
		return "symlink -> " + strings.TrimPrefix(r.SHA256, "link:")
	case r.SHA256 != "":
		return "sha256:" + r.SHA256
	}
	return fmt.Sprintf("size=%d mtime=%s", r.Size, time.Unix(0, r.MtimeNS).UTC().Format(time.RFC3339))
}

func modeString(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

func (s *Scanner) emitChange(r state.FileRow, what, op, before, after string, content []byte, via string, emit func(event.Event)) {
	owner, group := s.users.user(r.UID), s.users.group(r.GID)
	attrs := map[string]string{
		webshell.AttrOwner: owner, webshell.AttrUID: strconv.FormatUint(uint64(r.UID), 10),
		webshell.AttrGroup: group, "gid": strconv.FormatUint(uint64(r.GID), 10),
		webshell.AttrMode: modeString(r.Mode), webshell.AttrSize: strconv.FormatInt(r.Size, 10),
		webshell.AttrVia: via,
	}
	if content != nil && (what == webshell.WhatCreated || what == webshell.WhatChanged) {
		score, traits := webshell.Classify(r.Path, content)
		attrs[webshell.AttrScore] = strconv.FormatFloat(score, 'f', 3, 64)
		if len(traits) > 0 {
			attrs[webshell.AttrTraits] = strings.Join(traits, ",")
		}
	}
	s.rt.events.Add(1)
	emit(event.Event{Time: time.Now(), Kind: event.FileChanged, Source: "fim", User: owner,
		Change: &event.Change{What: what, Op: op, Path: r.Path, Before: before, After: after, Attrs: attrs}})
}

// lowerPriority lowers the CPU and I/O priority of the calling goroutine's
// thread, which it locks and never unlocks: the thread ends with the
// goroutine instead of carrying the low priority to other goroutines. Both
// nice and ioprio are per thread on Linux; lowering needs no privilege.
func lowerPriority(prio string) {
	if prio == PriorityNormal {
		return
	}
	runtime.LockOSThread()
	tid := unix.Gettid()
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, 19)
	const (
		whoProcess = 1 // IOPRIO_WHO_PROCESS: a thread id
		classBE    = 2
		classIdle  = 3
		shift      = 13
	)
	v := classBE<<shift | 7
	if prio == PriorityIdle {
		v = classIdle << shift
	}
	// Effective with the bfq scheduler (and cfq on old kernels); the
	// none and mq-deadline schedulers ignore it, the rate limit remains.
	_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, uintptr(tid), uintptr(v))
}

// limiter is a byte-rate limit shared by the workers: each read books its
// bytes on a virtual clock, and waits when the clock runs ahead of time.
type limiter struct {
	mu   sync.Mutex
	rate float64 // bytes per second
	next time.Time
}

func newLimiter(rate float64) *limiter { return &limiter{rate: rate} }

// burst is the credit an idle limiter accumulates: enough to read small
// files without sleeping, small enough to keep the average honest.
const burst = 100 * time.Millisecond

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now.Add(-burst)) {
		l.next = now.Add(-burst)
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	d := l.next.Sub(now)
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
