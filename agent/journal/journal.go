// Package journal reads systemd's journal through a journalctl subprocess
// and delivers its entries exactly once, in order, resumable by cursor.
//
// It is the journald backend of the log sensors (the auth sensor on hosts
// where sshd logs only to the journal, and others later); the agent's
// auto-detection calls Available to decide whether to use it. journalctl is
// used rather than linking libsystemd (no cgo) or parsing journal files
// ourselves (a format with corruption and rotation cases that journalctl
// already handles).
//
// How a Reader reads, and why:
//
//   - Catch up once without --follow, from the cursor (--after-cursor),
//     then follow (--follow --after-cursor) from the last cursor seen. Some
//     journalctl versions only return the current boot with --follow, so
//     following directly from a cursor of a previous boot would skip entries.
//   - With no cursor, the Reader starts at the current end of the journal:
//     it asks for the newest entry of the whole journal (--lines=1, no
//     identifier filter) and uses its cursor as if it had been saved. This
//     is done instead of "--lines=0 --follow" so that even the very first
//     journalctl run has a cursor to restart from: nothing written after
//     Run started is lost if that journalctl dies before printing anything.
//     An empty journal has no cursor; then everything is new and is read
//     from the beginning.
//   - When journalctl exits (it should not in follow mode: crash, killed,
//     journal files vacuumed under it), it is started again from the last
//     cursor delivered, catch-up first, after a delay that doubles from
//     0.5 s to 30 s and is reset after 10 s of healthy running. It never
//     spins.
//   - A saved cursor journalctl rejects ("Failed to seek to cursor") would
//     otherwise blind the sensor forever; it is logged as an error and the
//     Reader restarts from the end of the journal.
//   - Undecodable output lines are counted and logged (sparsely), never
//     fatal: fail2ban and CrowdSec both had journal backends die or go blind
//     on odd journal content.
//
// The caller persists Entry.Cursor in its own state transaction and passes
// the last one as Reader.Cursor on restart.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 30 * time.Second
	healthyAfter = 10 * time.Second
	// maxLine bounds one JSON line. journald caps entries far below this
	// in practice (stream lines at 48 KiB, datagrams at the socket buffer);
	// a longer line is skipped and counted, not buffered.
	maxLine = 8 << 20
	// stderrKeep is how much of journalctl's stderr is kept for the log.
	stderrKeep = 2048
)

// Reader follows the journal. Configure the fields, call Run once; Stats may
// be called concurrently. A Reader must not be copied after first use.
type Reader struct {
	// Journalctl is the journalctl binary (default "journalctl", found in
	// PATH).
	Journalctl string
	// Directory, if set, is passed as -D: read the journal files in that
	// directory instead of the system journal (tests, containers).
	Directory string
	// Identifiers restricts entries to these SYSLOG_IDENTIFIERs (one
	// --identifier each; journalctl ORs them). Empty means all entries.
	// Note OpenSSH >= 9.8 logs as "sshd-session" as well as "sshd".
	Identifiers []string
	// Cursor is the cursor of the last entry processed in a previous run;
	// Run resumes just after it. Empty: start at the end of the journal.
	Cursor string
	// Logger receives the reader's own diagnostics; nil discards them.
	Logger *slog.Logger

	c counters
}

// Stats are a Reader's counters since it was created.
type Stats struct {
	Entries  uint64 // entries delivered
	BadLines uint64 // output lines that could not be decoded (or were too long)
	Restarts uint64 // journalctl runs that ended abnormally and were restarted
}

type counters struct {
	entries, bad, restarts atomic.Uint64
}

// Stats returns the counters; safe to call concurrently with Run.
func (r *Reader) Stats() Stats {
	return Stats{Entries: r.c.entries.Load(), BadLines: r.c.bad.Load(), Restarts: r.c.restarts.Load()}
}

type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

// exitError is a journalctl run that failed, with the end of its stderr.
type exitError struct {
	err    error
	stderr string
}

func (e *exitError) Error() string {
	if e.stderr == "" {
		return e.err.Error()
	}
	return e.err.Error() + ": " + e.stderr
}
func (e *exitError) Unwrap() error { return e.err }

// errExited is a follow-mode journalctl that exited cleanly, which it only
// does when something went wrong.
var errExited = errors.New("journalctl exited")

// run is the state of one Run call.
type run struct {
	r      *Reader
	bin    string
	log    *slog.Logger
	emit   func(Entry) error
	cursor string // last cursor delivered (or the anchor)
}

// Run reads entries until ctx is cancelled (returning ctx.Err()) or emit
// returns an error (returned wrapped). emit is called from Run's goroutine,
// one entry at a time, in journal order. journalctl failing is not an
// error of Run: it is logged and restarted.
func (r *Reader) Run(ctx context.Context, emit func(Entry) error) error {
	lg := r.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	st := &run{r: r, bin: r.Journalctl, emit: emit, cursor: r.Cursor,
		log: lg.With(slog.String("subsystem", "journal"))}
	if st.bin == "" {
		st.bin = "journalctl"
	}

	backoff := minBackoff
	anchored := st.cursor != ""
	for {
		started := time.Now()
		err := st.attempt(ctx, &anchored)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		var ee *emitError
		if errors.As(err, &ee) {
			return fmt.Errorf("journal: emit: %w", ee.err)
		}
		if time.Since(started) >= healthyAfter {
			backoff = minBackoff
		}
		r.c.restarts.Add(1)
		st.log.Warn("journalctl ended, restarting", slog.Any("err", err),
			slog.Duration("delay", backoff), slog.Bool("have_cursor", st.cursor != ""))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// attempt anchors if needed, catches up, then follows; it returns when the
// follower journalctl ends or anything fails.
func (st *run) attempt(ctx context.Context, anchored *bool) error {
	if !*anchored {
		c, err := st.tailCursor(ctx)
		if err != nil {
			return fmt.Errorf("finding the end of the journal: %w", err)
		}
		st.cursor, *anchored = c, true
	}
	if err := st.invoke(ctx, false); err != nil {
		var xe *exitError
		if errors.As(err, &xe) && strings.Contains(xe.stderr, "cursor") {
			st.log.Error("journalctl rejected the saved cursor, restarting from the end of the journal; entries since the cursor are not read",
				slog.String("cursor", st.cursor), slog.Any("err", err))
			st.cursor, *anchored = "", false
		}
		return err
	}
	if err := st.invoke(ctx, true); err != nil {
		return err
	}
	return errExited
}

// baseArgs are the arguments common to every journalctl run.
func (st *run) baseArgs() []string {
	// --all: without it, fields over 4 KiB are printed as null. --quiet:
	// no "-- Journal begins" or permission hints on stdout/stderr.
	args := []string{"--output=json", "--no-pager", "--all", "--quiet"}
	if d := st.r.Directory; d != "" {
		args = append(args, "--directory="+d)
	}
	return args
}

// tailCursor returns the cursor of the newest entry of the whole journal,
// or "" when the journal is empty. No identifier filter: any entry marks
// "now" equally well, and a filter could find nothing.
func (st *run) tailCursor(ctx context.Context) (string, error) {
	var cursor string
	err := st.exec(ctx, append(st.baseArgs(), "--lines=1"), func(line []byte) error {
		if e, err := decodeEntry(line); err == nil {
			cursor = e.Cursor
		}
		return nil
	})
	return cursor, err
}

// invoke runs journalctl once from st.cursor, catching up (follow false,
// returns at the end of the journal) or following.
func (st *run) invoke(ctx context.Context, follow bool) error {
	args := st.baseArgs()
	for _, id := range st.r.Identifiers {
		// The = form keeps an identifier starting with "-" from being
		// taken as an option.
		args = append(args, "--identifier="+id)
	}
	if follow {
		args = append(args, "--follow")
	}
	switch {
	case st.cursor != "":
		args = append(args, "--after-cursor="+st.cursor)
	case follow:
		// No cursor only when the journal was empty at the anchor and
		// catch-up found nothing of ours: all of it is new.
		args = append(args, "--lines=all")
	}
	st.log.Debug("starting journalctl", slog.Any("args", args))
	return st.exec(ctx, args, func(line []byte) error {
		e, err := decodeEntry(line)
		if err != nil {
			st.badLine(err, len(line))
			return nil
		}
		if err := st.emit(e); err != nil {
			return &emitError{err}
		}
		st.r.c.entries.Add(1)
		st.cursor = e.Cursor
		return nil
	})
}

func (st *run) badLine(err error, n int) {
	bad := st.r.c.bad.Add(1)
	// Logged at 1, 2, 4, 8, ...: visible, never a flood.
	if bad&(bad-1) == 0 {
		st.log.Warn("undecodable journalctl output line skipped", slog.Any("err", err),
			slog.Int("len", n), slog.Uint64("bad_lines", bad))
	}
}

// exec runs journalctl with args, calling fn for every non-empty output
// line, and waits for it. An error from fn stops journalctl.
func (st *run) exec(ctx context.Context, args []string, fn func([]byte) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, st.bin, args...)
	stderr := &tailBuffer{max: stderrKeep}
	cmd.Stderr = stderr
	// Do not outlive the agent: a follower would otherwise linger until
	// its next write hits the closed pipe.
	cmd.SysProcAttr = dieWithParent()
	// Bound the wait for stderr copying after the process is gone.
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ferr := readLines(stdout, fn, func() {
		st.badLine(errors.New("line too long"), maxLine)
	})
	if ferr != nil {
		cancel()
	}
	werr := cmd.Wait()
	if ferr != nil {
		var ee *emitError
		if errors.As(ferr, &ee) {
			return ferr
		}
		// A read error on the pipe: report it with whatever exit status.
		return &exitError{err: ferr, stderr: stderr.String()}
	}
	if werr != nil {
		return &exitError{err: werr, stderr: stderr.String()}
	}
	return nil
}

// readLines calls fn for each non-empty line of rd, and tooLong for each
// line over maxLine (skipped without being held in memory).
func readLines(rd io.Reader, fn func([]byte) error, tooLong func()) error {
	br := bufio.NewReaderSize(rd, 64<<10)
	var long []byte // a line longer than br's buffer, being assembled
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !skipping && len(long)+len(chunk) > maxLine+1 { // +1: the newline
			skipping, long = true, nil
		}
		if err == bufio.ErrBufferFull {
			if !skipping {
				long = append(long, chunk...)
			}
			continue
		}
		if skipping {
			skipping = false
			tooLong()
		} else {
			line := chunk
			if len(long) > 0 {
				line = append(long, chunk...)
				long = long[:0]
			}
			if l := bytes.TrimSpace(line); len(l) > 0 {
				if ferr := fn(l); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// tailBuffer keeps the last max bytes written to it (journalctl's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Available reports whether journalctl (default "journalctl") runs and can
// read a non-empty system journal: nil means the journal backend is usable.
// It fails when the binary is missing, when journalctl fails, when the
// journal is empty or missing (no journald, or a container without one),
// and when journalctl says it can only show part of the journal for lack
// of permissions (not root and not in the systemd-journal group), since the
// sensors would then silently miss sshd's entries.
func Available(ctx context.Context, journalctl string) error {
	if journalctl == "" {
		journalctl = "journalctl"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, journalctl, "--output=json", "--no-pager", "--lines=1")
	stderr := &tailBuffer{max: stderrKeep}
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	if err != nil {
		if s := stderr.String(); s != "" {
			return fmt.Errorf("journal: %s: %w: %s", journalctl, err, s)
		}
		return fmt.Errorf("journal: %s: %w", journalctl, err)
	}
	if s := stderr.String(); strings.Contains(s, "insufficient permissions") ||
		strings.Contains(s, "not seeing messages from other users") {
		return fmt.Errorf("journal: system journal not readable by this user: %s", s)
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		if _, err := decodeEntry(line); err == nil {
			return nil
		}
	}
	return errors.New("journal: no readable journal entries")
}
