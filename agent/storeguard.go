package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/picket-agent/picket/agent/pipeline"
)

// A state database that cannot be written (above all a full disk) must
// not end the agent: before, the first failed commit left the main loop
// and the agent exited, and under systemd it then failed to start again
// for as long as the disk stayed full. Now the main loop keeps running:
//
//   - the failed batch and the read positions are held (commit keeps
//     them), and intake pauses: the sensors block on their channel, so
//     nothing past the held lines is read, and what was read is committed
//     with its positions once a commit succeeds; a crash meanwhile loses
//     nothing acknowledged (the last committed positions are re-read);
//   - the agent keeps a small reserve file in the state directory; on the
//     first "disk full" it deletes it, so the status that says what is
//     wrong can still be written (`picket status` shows it), and the log
//     says it too (once, then every minute);
//   - every heartbeat it tries again; on a full file system only once
//     there is room for the reserve again (recreated first), so the
//     freed reserve is never eaten by the backlog.
//
// The audit chain cannot break: every entry is appended inside the
// transaction that fails or succeeds as a whole.

const (
	reserveFile = "picket.reserve"
	reserveSize = 1 << 20
	// storeLogEvery bounds the error log while writes keep failing.
	storeLogEvery = time.Minute
)

// storeGuard is the runner's record of a failing store.
type storeGuard struct {
	dir     string
	lastLog time.Time
}

func (g *storeGuard) reservePath() string { return filepath.Join(g.dir, reserveFile) }

// ensureReserve creates the reserve file if it is missing, with real
// blocks (zeros written and synced; a sparse file reserves nothing).
func (g *storeGuard) ensureReserve() error {
	p := g.reservePath()
	if fi, err := os.Stat(p); err == nil && fi.Size() >= reserveSize {
		return nil
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("agent: state reserve: %w", err)
	}
	_, err = f.Write(make([]byte, reserveSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("agent: state reserve: %w", err)
	}
	return nil
}

// releaseReserve deletes the reserve; it reports whether there was one.
func (g *storeGuard) releaseReserve() bool {
	return os.Remove(g.reservePath()) == nil
}

// holdBatch keeps a batch whose commit failed, ahead of what comes next:
// incidents are written as their latest state (an older copy first, then
// the newer one), plans and audit entries in order.
func (r *runner) holdBatch(b pipeline.Batch) {
	if r.held == nil {
		r.held = &b
		return
	}
	h := r.held
	h.Incidents = append(h.Incidents, b.Incidents...)
	h.Plans = append(h.Plans, b.Plans...)
	h.Audit = append(h.Audit, b.Audit...)
}

// takeBatch is the pipeline's batch preceded by any held one.
func (r *runner) takeBatch() pipeline.Batch {
	b := r.pl.Take()
	r.counters.Signals += int64(b.Signals)
	if r.held == nil {
		return b
	}
	h := *r.held
	r.held = nil
	h.Incidents = append(h.Incidents, b.Incidents...)
	h.Plans = append(h.Plans, b.Plans...)
	h.Audit = append(h.Audit, b.Audit...)
	return h
}

// isFull reports whether err says the file system is out of space
// (SQLite reports SQLITE_FULL as "database or disk is full").
func isFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "disk is full") || strings.Contains(msg, "no space left")
}

// storing reports whether the store is healthy (intake runs).
func (r *runner) storing() bool { return r.status.Store == nil }

// storeFailed records a failed write: status, log, reserve.
func (r *runner) storeFailed(ctx context.Context, err error, now time.Time) {
	full := isFull(err)
	first := r.status.Store == nil
	if first {
		r.status.Store = &StoreStatus{Since: now}
	}
	s := r.status.Store
	s.Error, s.Full = err.Error(), full
	released := false
	if full {
		released = r.guard.releaseReserve()
	}
	if first || now.Sub(r.guard.lastLog) >= storeLogEvery {
		r.guard.lastLog = now
		r.a.log.Error("state database not writable: intake paused, retrying every heartbeat; nothing past the last commit is read",
			"err", err, "full", full, "since", s.Since, "reserve_released", released)
	}
	// Best effort: with the reserve gone there is room for this.
	if werr := r.writeStatus(ctx, now); werr != nil && first {
		r.a.log.Error("status not written either", "err", werr)
	}
}

// storeRetry tries to commit what is held. It reports whether the store
// works again.
func (r *runner) storeRetry(ctx context.Context, now time.Time) bool {
	s := r.status.Store
	if s.Full {
		if free, err := freeBytes(r.guard.dir); err == nil && free < 2*reserveSize {
			r.writeStatus(ctx, now) // heartbeat; may fail, is retried
			return false
		}
		if err := r.guard.ensureReserve(); err != nil {
			r.storeFailed(ctx, err, now)
			return false
		}
	}
	if err := r.commit(ctx); err != nil {
		r.storeFailed(ctx, err, now)
		return false
	}
	r.a.log.Info("state database writable again: intake resumed", "failing_for", now.Sub(s.Since).Round(time.Second).String())
	r.status.Store = nil
	if err := r.writeStatus(ctx, now); err != nil {
		r.storeFailed(ctx, err, now)
		return false
	}
	return true
}
