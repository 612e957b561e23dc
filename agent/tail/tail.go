// Package tail follows one growing log file and delivers its complete lines
// exactly once, in order, across log rotation and agent restarts.
//
// It is shared by every file-based log sensor (the auth log, web server
// access logs, and later others). A sensor runs one Follower per file; for
// every line it receives a Position, which it persists in the same state
// transaction as whatever it derived from the line, and hands back as Start
// on the next run. That is what makes a restart neither re-read nor skip
// lines: this package never stores anything itself.
//
// Handled: rotation by rename (logrotate's default "create" mode; the old
// file is read to its end before switching), copytruncate, files that are
// missing for a while or created later, a partial last line (held back until
// its newline arrives), lines longer than MaxLine (truncated, memory stays
// bounded), and a rotation that happened while the agent was stopped (the
// saved inode is looked up among its siblings in the same directory).
//
// Known limits, shared with tail -F and every inode-based follower: a
// copytruncate that is followed by new writes growing the file past our
// offset before we look is indistinguishable from appends, and lines a
// writer appends to a renamed file after we switched to the new file are not
// read (we only switch once the new file has content, which in logrotate's
// create mode means the writer has already reopened).
package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for the zero values of Follower's knobs.
const (
	DefaultPoll    = 250 * time.Millisecond
	DefaultMaxLine = 64 << 10
	// With the default Poll, the look at the file becomes a backstop once
	// its directory is watched (notifications carry the news), and backs
	// off while the file is missing and cannot be watched: an idle agent
	// following absent logs must not wake up four times a second per file.
	notifiedPoll   = 10 * time.Second
	maxMissingPoll = 5 * time.Second
)

// readBufSize is the size of each read. Big enough that following a busy
// file costs few syscalls, small enough to not matter per follower.
const readBufSize = 64 << 10

// Position identifies a place in a specific file: the file by device and
// inode (names change under rotation, inodes do not), and the byte offset
// just after the last line delivered. The zero Position means "none".
type Position struct {
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

// IsZero reports whether p names no file.
func (p Position) IsZero() bool { return p.Dev == 0 && p.Inode == 0 }

// Line is one complete line of the file, without its trailing newline (nor
// a "\r" before it). Pos is the position to persist once the line has been
// processed: resuming from it starts with the next line.
type Line struct {
	Text string
	Pos  Position
}

// Stats are a Follower's counters since it was created.
type Stats struct {
	Lines     uint64 // lines delivered (including truncated and flushed partial ones)
	Bytes     uint64 // bytes read from files
	Truncated uint64 // lines longer than MaxLine, delivered truncated
	Rotations uint64 // switches to a new file (rename rotation, file replaced)
	Truncates uint64 // the followed file shrank under us (copytruncate): re-read from 0
}

type counters struct {
	lines, bytes, truncated, rotations, truncates atomic.Uint64
}

// Follower follows the file at Path. Configure the exported fields, then
// call Run (one Run at a time per Follower); Stats may be called
// concurrently at any time. A Follower must not be copied after first use.
type Follower struct {
	// Path of the file to follow. Its directory is searched for rotated
	// siblings when Start names a file that is no longer at Path.
	Path string
	// Start is the position saved from a previous run (Line.Pos). Zero
	// means no saved position: see StartAtEnd.
	Start Position
	// StartAtEnd, with no Start, skips what the file already holds (a
	// sensor enabled for the first time should not replay months of logs).
	// A file that does not exist yet is read from its beginning once it
	// appears, since everything in it is then new.
	StartAtEnd bool
	// Poll is how often the file is checked when no change notification
	// arrived. Polling alone is sufficient; notifications only make
	// delivery prompter. Zero: 250ms, relaxed to a 10s backstop while the
	// directory is watched, and backing off to 5s while the file is
	// missing and its directory cannot be watched (it is retried).
	Poll time.Duration
	// MaxLine bounds the length of a delivered line in bytes (default
	// 64 KiB); longer lines are truncated and counted, the rest of the line
	// is skipped without being held in memory.
	MaxLine int
	// NoNotify disables fsnotify and relies on polling only (for file
	// systems without inotify, and to test the poll path).
	NoNotify bool
	// Logger receives the follower's own diagnostics; nil discards them.
	Logger *slog.Logger

	c counters
}

// Stats returns the counters; safe to call concurrently with Run.
func (f *Follower) Stats() Stats {
	return Stats{
		Lines:     f.c.lines.Load(),
		Bytes:     f.c.bytes.Load(),
		Truncated: f.c.truncated.Load(),
		Rotations: f.c.rotations.Load(),
		Truncates: f.c.truncates.Load(),
	}
}

// emitError marks an error that came from the caller's emit, so Run can
// wrap it differently from its own read errors.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// run holds the state of one Run call, so a Follower itself stays plain
// configuration plus counters.
type run struct {
	f       *Follower
	log     *slog.Logger
	emit    func(Line) error
	poll    time.Duration
	maxLine int

	file     *os.File // the file being read; nil while Path is missing
	dev, ino uint64
	offset   int64 // just after the last delivered line
	readPos  int64 // where the next read starts: offset + bytes held in pending
	pending  []byte
	overflow bool // pending hit maxLine; the rest of the line is being skipped
	buf      []byte

	missingLogged bool   // a "waiting for file" message is out; no repeats
	openErrLogged string // last open error logged, to not repeat it every poll

	events <-chan fsnotify.Event
	errs   <-chan error
	timer  *time.Timer

	adaptive bool              // Poll was zero: see Follower.Poll
	watcher  *fsnotify.Watcher // nil: notifications unavailable
	missing  time.Duration     // current back-off while the file is missing
}

// Run follows the file until ctx is cancelled (returning ctx.Err()) or emit
// returns an error (returned wrapped). emit is called from Run's goroutine,
// one line at a time, in file order. Read errors on the open file end Run;
// a missing or unreadable Path does not, it is waited for.
func (f *Follower) Run(ctx context.Context, emit func(Line) error) error {
	if f.Path == "" {
		return errors.New("tail: empty Path")
	}
	r := &run{
		f:       f,
		emit:    emit,
		poll:    f.Poll,
		maxLine: f.MaxLine,
		buf:     make([]byte, readBufSize),
	}
	if r.poll <= 0 {
		r.poll, r.adaptive = DefaultPoll, true
	}
	if r.maxLine <= 0 {
		r.maxLine = DefaultMaxLine
	}
	lg := f.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	r.log = lg.With(slog.String("subsystem", "tail"), slog.String("path", f.Path))
	defer r.closeFile()

	if !f.NoNotify {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			// inotify instances are a per-user limit; polling still works.
			r.log.Warn("file notifications unavailable, polling only", slog.Any("err", err))
		} else {
			defer w.Close()
			// Watch the directory, not the file: it reports writes to the
			// file and also its rename, removal and re-creation.
			if err := w.Add(filepath.Dir(f.Path)); err != nil {
				r.log.Warn("cannot watch directory, polling only", slog.Any("err", err))
				r.watcher = w // retried at each poll: the directory may appear
			} else {
				r.events, r.errs = w.Events, w.Errors
			}
		}
	}
	r.timer = time.NewTimer(r.poll)
	defer r.timer.Stop()

	if err := r.start(); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.step(ctx); err != nil {
			var ee *emitError
			if errors.As(err, &ee) {
				return fmt.Errorf("tail %s: emit: %w", f.Path, ee.err)
			}
			return err
		}
		if err := r.wait(ctx); err != nil {
			return err
		}
	}
}

// start opens the file Run begins with, according to Start and StartAtEnd.
func (r *run) start() error {
	f := r.f
	if !f.Start.IsZero() {
		off := max(f.Start.Offset, 0) // a corrupt negative offset must not mean "end"
		if fi, err := os.Stat(f.Path); err == nil && sameFile(fi, f.Start.Dev, f.Start.Inode) {
			return r.openAt(f.Path, off)
		}
		// Rotated while we were stopped: finish the old file first; the main
		// loop then switches to the new one at offset 0, as for a live
		// rotation.
		if name := findSibling(f.Path, f.Start.Dev, f.Start.Inode); name != "" {
			r.log.Info("resuming rotated file", slog.String("file", name))
			return r.openAt(name, off)
		}
		r.log.Warn("saved file is gone, starting current file from the beginning; lines between may be missed",
			slog.Uint64("inode", f.Start.Inode), slog.Int64("offset", f.Start.Offset))
		return r.tryOpenPath(0)
	}
	if f.StartAtEnd {
		return r.tryOpenPath(-1)
	}
	return r.tryOpenPath(0)
}

// tryOpenPath opens Path at off (-1: at its end); a missing or unreadable
// file is not an error, the main loop waits for it.
func (r *run) tryOpenPath(off int64) error {
	err := r.openAt(r.f.Path, off)
	if err == nil || r.noteOpenError(err) {
		return nil
	}
	return err
}

// noteOpenError logs an open failure of Path once (per distinct error) and
// reports whether it is the kind to wait out rather than fail on.
func (r *run) noteOpenError(err error) bool {
	if errors.Is(err, fs.ErrNotExist) {
		if !r.missingLogged {
			r.log.Info("file does not exist, waiting for it")
			r.missingLogged = true
		}
		return true
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// Permissions, a directory in the way, ...: may be fixed by an
		// admin, so wait, but say so once.
		if msg := err.Error(); msg != r.openErrLogged {
			r.log.Warn("cannot open file, will retry", slog.Any("err", err))
			r.openErrLogged = msg
		}
		return true
	}
	return false
}

// openAt makes name the current file, positioned at off (-1: end). An
// offset past the end means the file was truncated while we were away.
func (r *run) openAt(name string, off int64) error {
	fh, err := os.Open(name)
	if err != nil {
		return err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case off < 0:
		off = fi.Size()
	case off > fi.Size():
		r.log.Info("file shorter than saved offset, reading from the beginning",
			slog.Int64("offset", off), slog.Int64("size", fi.Size()))
		r.f.c.truncates.Add(1)
		off = 0
	}
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		fh.Close()
		return err
	}
	r.closeFile()
	r.file, r.dev, r.ino = fh, uint64(st.Dev), st.Ino
	r.offset, r.readPos = off, off
	r.pending, r.overflow = r.pending[:0], false
	if r.missingLogged || r.openErrLogged != "" {
		r.log.Info("file available")
	}
	r.missingLogged, r.openErrLogged = false, ""
	return nil
}

func (r *run) closeFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

// step reads whatever is new, then deals with truncation and rotation.
func (r *run) step(ctx context.Context) error {
	if r.file == nil {
		if err := r.openAt(r.f.Path, 0); err != nil {
			if r.noteOpenError(err) {
				return nil
			}
			return err
		}
	}
	for {
		if err := r.drain(ctx); err != nil {
			return err
		}
		fi, err := r.file.Stat()
		if err != nil {
			return fmt.Errorf("tail %s: stat: %w", r.f.Path, err)
		}
		if fi.Size() < r.readPos {
			// copytruncate: the content we read went to a copy. A partial
			// line we hold went with it and will never be completed here.
			r.log.Info("file truncated, reading from the beginning",
				slog.Int64("offset", r.readPos), slog.Int64("size", fi.Size()))
			if err := r.flushPartial(); err != nil {
				return err
			}
			r.f.c.truncates.Add(1)
			if _, err := r.file.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("tail %s: seek: %w", r.f.Path, err)
			}
			r.offset, r.readPos = 0, 0
			continue
		}
		// Has Path been replaced by another file? Switch only once the new
		// file has content: in logrotate's create mode the writer keeps
		// appending to the renamed file until it is told to reopen, and
		// those lines must not be lost.
		pfi, err := os.Stat(r.f.Path)
		if err != nil || sameFile(pfi, r.dev, r.ino) || !pfi.Mode().IsRegular() || pfi.Size() == 0 {
			return nil
		}
		// Read what was appended to the old file since drain above.
		if err := r.drain(ctx); err != nil {
			return err
		}
		if err := r.flushPartial(); err != nil {
			return err
		}
		old := r.ino
		if err := r.openAt(r.f.Path, 0); err != nil {
			if r.noteOpenError(err) {
				return nil // keep the old file; try again next time
			}
			return err
		}
		r.f.c.rotations.Add(1)
		r.log.Info("file rotated, following the new file",
			slog.Uint64("old_inode", old), slog.Uint64("inode", r.ino))
	}
}

// drain reads the current file to EOF, delivering complete lines.
func (r *run) drain(ctx context.Context) error {
	for {
		n, err := r.file.Read(r.buf)
		if n > 0 {
			r.f.c.bytes.Add(uint64(n))
			if perr := r.process(r.buf[:n]); perr != nil {
				return perr
			}
			// Checked per read, not per line: cheap, and still prompt.
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tail %s: read: %w", r.f.Path, err)
		}
	}
}

// process splits data into lines, joining with what is pending from the
// previous read. Memory held is bounded by maxLine whatever the input.
func (r *run) process(data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			r.appendPending(data)
			r.readPos += int64(len(data))
			return nil
		}
		seg := data[:i]
		data = data[i+1:]
		r.readPos += int64(i + 1)
		var text string
		truncated := r.overflow
		if len(r.pending) == 0 && !r.overflow {
			if len(seg) > r.maxLine {
				seg, truncated = seg[:r.maxLine], true
			}
			text = lineText(seg)
		} else {
			r.appendPending(seg)
			truncated = r.overflow
			text = lineText(r.pending)
			r.pending, r.overflow = r.pending[:0], false
		}
		if err := r.deliver(text, truncated); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) appendPending(b []byte) {
	room := r.maxLine - len(r.pending)
	if len(b) > room {
		b = b[:room]
		r.overflow = true
	}
	r.pending = append(r.pending, b...)
}

// flushPartial delivers a last line without newline from a file that is
// being left (rotated away or truncated): its newline will never come.
func (r *run) flushPartial() error {
	if len(r.pending) == 0 && !r.overflow {
		return nil
	}
	text, truncated := lineText(r.pending), r.overflow
	r.pending, r.overflow = r.pending[:0], false
	return r.deliver(text, truncated)
}

func (r *run) deliver(text string, truncated bool) error {
	r.offset = r.readPos
	if truncated {
		r.f.c.truncated.Add(1)
	}
	r.f.c.lines.Add(1)
	if err := r.emit(Line{Text: text, Pos: Position{Dev: r.dev, Inode: r.ino, Offset: r.offset}}); err != nil {
		return &emitError{err}
	}
	return nil
}

// lineText drops a "\r" before the newline: CRLF logs exist (Windows-edited
// files, some appliances) and parsers anchor on end of line.
func lineText(b []byte) string {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b)
}

// wait sleeps until the poll interval passes, a relevant file system event
// arrives, or ctx is cancelled.
func (r *run) wait(ctx context.Context) error {
	r.timer.Reset(r.interval())
	base := filepath.Base(r.f.Path)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.timer.C:
			return nil
		case ev, ok := <-r.events:
			if !ok {
				r.events = nil
				continue
			}
			// The directory may be busy (/var/log): only our file and its
			// rotated siblings are worth waking up for.
			if !strings.HasPrefix(filepath.Base(ev.Name), base) {
				continue
			}
			r.drainEvents()
			return nil
		case err, ok := <-r.errs:
			if !ok {
				r.errs = nil
				continue
			}
			// Typically a queue overflow: events were lost, so look now.
			r.log.Debug("file notification error", slog.Any("err", err))
			return nil
		}
	}
}

// interval is how long to wait for the next look (see Follower.Poll). A
// directory that could not be watched is tried again first.
func (r *run) interval() time.Duration {
	if r.watcher != nil && r.events == nil {
		if err := r.watcher.Add(filepath.Dir(r.f.Path)); err == nil {
			r.events, r.errs, r.watcher = r.watcher.Events, r.watcher.Errors, nil
			r.log.Info("directory watched")
		}
	}
	switch {
	case !r.adaptive:
		return r.poll
	case r.events != nil:
		return notifiedPoll
	case r.file == nil:
		r.missing = min(max(2*r.missing, r.poll), maxMissingPoll)
		return r.missing
	}
	r.missing = 0
	return r.poll
}

// drainEvents discards queued events: one look at the file covers them all.
func (r *run) drainEvents() {
	for {
		select {
		case _, ok := <-r.events:
			if !ok {
				r.events = nil
				return
			}
		default:
			return
		}
	}
}

func sameFile(fi fs.FileInfo, dev, ino uint64) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && st.Ino == ino
}

// findSibling returns the name of the file in path's directory that has the
// given device and inode, or "". Names starting like path (path.1,
// path-20240101, ...) are tried first; any other name is accepted too,
// since rotation schemes vary (olddir aside, which is a different directory
// and not supported).
func findSibling(path string, dev, ino uint64) string {
	dir, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var rest []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if !strings.HasPrefix(e.Name(), base) {
			rest = append(rest, name)
			continue
		}
		if fi, err := os.Stat(name); err == nil && sameFile(fi, dev, ino) {
			return name
		}
	}
	for _, name := range rest {
		if fi, err := os.Stat(name); err == nil && sameFile(fi, dev, ino) {
			return name
		}
	}
	return ""
}
