package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/state"
)

// Expire rolls back every applied action whose time is up.
func (e *Engine) Expire(ctx context.Context) error {
	rows, err := e.cfg.Store.DueActions(ctx, e.cfg.Now(), 0)
	if err != nil || len(rows) == 0 {
		return err
	}
	due := make([]*Action, 0, len(rows))
	for _, r := range rows {
		a, err := fromRow(r)
		if err != nil {
			return err
		}
		due = append(due, &a)
	}
	return e.revertMany(ctx, due, StatusExpired, func(a *Action) string { return "expired after " + short(a.Expires.Sub(a.Applied)) })
}

// Rollback undoes one action now; why goes to the journal and the audit.
func (e *Engine) Rollback(ctx context.Context, id int64, why string) (Action, error) {
	r, err := e.cfg.Store.Action(ctx, id)
	if err != nil {
		return Action{}, err
	}
	a, err := fromRow(r)
	if err != nil {
		return a, err
	}
	if !slices.Contains(inForce, a.Status) {
		return a, fmt.Errorf("actions: rollback %d (%s): %w", id, a.Status, ErrNotInForce)
	}
	return a, e.revert(ctx, &a, StatusRolledBack, why)
}

// RequestRollback marks an action for rollback by whoever runs the engine.
func RequestRollback(ctx context.Context, st *state.Store, id int64, why string) (Action, error) {
	var a Action
	err := st.Update(ctx, func(tx *state.Tx) error {
		r, err := tx.Action(ctx, id)
		if err != nil {
			return err
		}
		if a, err = fromRow(r); err != nil {
			return err
		}
		if a.Status != StatusApplied && a.Status != StatusApplying {
			return fmt.Errorf("actions: rollback %d (%s): %w", id, a.Status, ErrNotInForce)
		}
		a.Status, a.Note = StatusRollbackRequested, why
		return tx.PutAction(ctx, a.row())
	})
	return a, err
}

func (e *Engine) rollbackRequested(ctx context.Context) error {
	reqs, err := List(ctx, e.cfg.Store, 0, StatusRollbackRequested)
	if err != nil || len(reqs) == 0 {
		return err
	}
	return e.revertMany(ctx, ptrs(reqs), StatusRolledBack, func(a *Action) string { return a.Note })
}

// revert undoes a and journals the outcome as status with why.
func (e *Engine) revert(ctx context.Context, a *Action, status, why string) error {
	return e.revertMany(ctx, []*Action{a}, status, func(*Action) string { return why })
}

// revertMany undoes as (a batch per kind where the executor takes one) and
// journals every outcome in one transaction: status with why(a), or, for
// a failed undo, the entry stays in force (so the reconciler tries again)
// and says so.
func (e *Engine) revertMany(ctx context.Context, as []*Action, status string, why func(*Action) string) error {
	if len(as) == 0 {
		return nil
	}
	errs := make([]error, len(as))
	byKind := map[string][]int{}
	for i, a := range as {
		byKind[a.Kind] = append(byKind[a.Kind], i)
	}
	for kind, idx := range byKind {
		x := e.cfg.Executors[kind]
		if x == nil {
			for _, i := range idx {
				errs[i] = errNoExecutor
			}
			continue
		}
		if bx, ok := x.(Batcher); ok {
			group := make([]*Action, len(idx))
			for j, i := range idx {
				group[j] = as[i]
			}
			for j, err := range bx.RevertBatch(ctx, group) {
				errs[idx[j]] = err
			}
			continue
		}
		for _, i := range idx {
			errs[i] = x.Revert(ctx, as[i])
		}
	}
	now := e.cfg.Now()
	var failed []error
	err := e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		entries := make([]audit.Entry, 0, len(as))
		for i, a := range as {
			w := why(a)
			switch {
			case errors.Is(errs[i], errNoExecutor):
				a.Note = "cannot undo: no executor for " + a.Kind + " on this host"
			case errs[i] != nil:
				a.Note = fmt.Sprintf("%s; undo failed (will retry): %v", w, errs[i])
				if a.Status == StatusRollbackRequested {
					a.Status = StatusApplied
				}
				failed = append(failed, fmt.Errorf("actions: undo %d: %w", a.ID, errs[i]))
			default:
				a.Status, a.Ended, a.Note = status, now, w
			}
			msg := a.Note
			if errs[i] == nil {
				msg = status + ": " + w
			}
			if err := tx.PutAction(ctx, a.row()); err != nil {
				return err
			}
			entries = append(entries, auditEntry(a, now, msg))
		}
		return tx.AppendAudits(ctx, entries)
	})
	return errors.Join(append(failed, err)...)
}

// errNoExecutor: an entry of a kind this host has no executor for.
var errNoExecutor = errors.New("actions: no executor")

// Reconcile compares the journal with the host: at start it finishes or
// undoes what the agent was applying when it died and rolls back what
// expired while it was down; always, it re-asserts what the host lost and
// sweeps orphans. With the emergency-stop flag set it re-asserts nothing
// and undoes everything instead.
func (e *Engine) Reconcile(ctx context.Context, atStart bool) error {
	if stopped, err := e.emergency(ctx); stopped || err != nil {
		return err
	}
	live, err := List(ctx, e.cfg.Store, 0, inForce...)
	if err != nil {
		return err
	}
	now := e.cfg.Now()
	var errs []error
	var undo, requested, expired []*Action
	check := map[string][]*Action{}
	var redo []*Action // batched kinds caught mid-apply: applied again
	var kept []Action
	for i := range live {
		a := &live[i]
		x := e.cfg.Executors[a.Kind]
		_, batched := x.(Batcher)
		switch {
		case a.Status == StatusRollbackRequested:
			requested = append(requested, a)
		case !a.Expires.IsZero() && !now.Before(a.Expires):
			expired = append(expired, a)
		case a.Status == StatusApplying && atStart && batched && !a.Expires.IsZero():
			redo = append(redo, a)
			kept = append(kept, *a)
		case a.Status == StatusApplying && atStart:
			undo = append(undo, a)
		case a.Status == StatusApplying:
			continue // being applied by this engine right now
		case x == nil:
			continue
		default:
			check[a.Kind] = append(check[a.Kind], a)
			kept = append(kept, *a)
		}
	}
	errs = append(errs,
		e.revertMany(ctx, undo, StatusRolledBack, func(*Action) string {
			return "the agent stopped while applying it; undone from its snapshot"
		}),
		e.revertMany(ctx, requested, StatusRolledBack, func(a *Action) string { return a.Note }),
		e.revertMany(ctx, expired, StatusExpired, func(*Action) string {
			if atStart {
				return "expired while the agent was not running"
			}
			return "expired"
		}))
	errs = append(errs, e.finish(ctx, redo))
	for _, kind := range sortedKeys(e.cfg.Executors) {
		if as := check[kind]; len(as) > 0 {
			errs = append(errs, e.reassert(ctx, e.cfg.Executors[kind], as, now))
		}
	}
	for _, name := range sortedKeys(e.cfg.Executors) {
		s, ok := e.cfg.Executors[name].(Sweeper)
		if !ok {
			continue
		}
		var mine []Action
		for _, a := range kept {
			if a.Kind == name {
				mine = append(mine, a)
			}
		}
		removed, err := s.Sweep(ctx, mine)
		if err != nil {
			errs = append(errs, fmt.Errorf("actions: sweep %s: %w", name, err))
		}
		if len(removed) > 0 {
			errs = append(errs, e.auditOnly(ctx, now, "actions", fmt.Sprintf("removed %s state no journal entry accounts for: %s", name, strings.Join(removed, ", "))))
		}
	}
	return errors.Join(errs...)
}

// finish applies again the batched actions a crash caught between their
// journal entry and their outcome: they passed every check, and their
// executor is idempotent, so completing them is what the plan asked for
// (undoing them would let an attacker in).
func (e *Engine) finish(ctx context.Context, as []*Action) error {
	byKind := map[string][]*Action{}
	for _, a := range as {
		byKind[a.Kind] = append(byKind[a.Kind], a)
	}
	var errs []error
	for kind, group := range byKind {
		bx := e.cfg.Executors[kind].(Batcher)
		notes, aerrs := bx.ApplyBatch(ctx, group)
		now := e.cfg.Now()
		var incidents []int64
		errs = append(errs, e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
			for i, a := range group {
				msg := ""
				if aerrs[i] != nil {
					a.Status, a.Ended, a.Note = StatusFailed, now, "apply after restart: "+aerrs[i].Error()
					msg = "failed: " + a.Note
				} else {
					a.Status, a.Applied, a.Note = StatusApplied, now, notes[i]
					msg = fmt.Sprintf("applied (until %s) after the agent stopped while applying it: %s", a.Expires.Format(time.RFC3339), notes[i])
					incidents = append(incidents, a.Incident)
				}
				if err := tx.PutAction(ctx, a.row()); err != nil {
					return err
				}
				if err := appendAudit(ctx, tx, a, now, msg); err != nil {
					return err
				}
			}
			return nil
		}))
		e.noteApplied(incidents...)
	}
	return errors.Join(errs...)
}

// reassert applies again the actions of one kind the host no longer
// carries (firewall flushed, changed by hand).
func (e *Engine) reassert(ctx context.Context, x Executor, as []*Action, now time.Time) error {
	var gone []*Action
	if bx, ok := x.(Batcher); ok {
		in, err := bx.InForceBatch(ctx, as)
		if err != nil {
			return fmt.Errorf("actions: check %s: %w", as[0].Kind, err)
		}
		for i, a := range as {
			// One about to expire is left to expire (the kernel drops it
			// first anyway).
			if !in[i] && (a.Expires.IsZero() || a.Expires.Sub(now) > 2*time.Second) {
				gone = append(gone, a)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		notes, errs := bx.ApplyBatch(ctx, gone)
		return e.journalReasserted(ctx, gone, notes, errs)
	}
	var errs []error
	for _, a := range as {
		ok, err := x.InForce(ctx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("actions: check %d: %w", a.ID, err))
			continue
		}
		if ok {
			continue
		}
		note, err := x.Apply(ctx, a)
		errs = append(errs, e.journalReasserted(ctx, []*Action{a}, []string{note}, []error{err}))
	}
	return errors.Join(errs...)
}

func (e *Engine) journalReasserted(ctx context.Context, as []*Action, notes []string, aerrs []error) error {
	var errs []error
	now := e.cfg.Now()
	errs = append(errs, e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		for i, a := range as {
			if aerrs[i] != nil {
				errs = append(errs, fmt.Errorf("actions: re-assert %d: %w", a.ID, aerrs[i]))
				continue
			}
			a.Note = "re-asserted: " + notes[i]
			if err := tx.PutAction(ctx, a.row()); err != nil {
				return err
			}
			if err := appendAudit(ctx, tx, a, now, "re-asserted: the host no longer carried it (firewall flushed, or changed by hand)"); err != nil {
				return err
			}
		}
		return nil
	}))
	return errors.Join(errs...)
}

// HealthTick re-runs the health checks while actions are in force and
// rolls back each action whose healthy checks now fail.
func (e *Engine) HealthTick(ctx context.Context) error {
	if e.cfg.Health == nil {
		return nil
	}
	// Nothing in force, nothing to check; the journal is read only when a
	// check fails (it may hold a botnet's worth of blocks).
	if one, err := List(ctx, e.cfg.Store, 1, StatusApplied); err != nil || len(one) == 0 {
		return err
	}
	failing := map[string]string{}
	for _, r := range e.cfg.Health(ctx) {
		if !r.OK {
			failing[r.Name] = r.Detail
		}
	}
	if len(failing) == 0 {
		return nil
	}
	live, err := List(ctx, e.cfg.Store, 0, StatusApplied)
	if err != nil || len(live) == 0 {
		return err
	}
	var back []*Action
	reason := map[*Action]string{}
	for i := len(live) - 1; i >= 0; i-- {
		a := &live[i]
		for _, h := range a.Healthy {
			if d, bad := failing[h]; bad {
				back = append(back, a)
				reason[a] = fmt.Sprintf("health check %q failed while it was in force: %s", h, d)
				break
			}
		}
	}
	return e.revertMany(ctx, back, StatusRolledBack, func(a *Action) string { return reason[a] })
}

func (e *Engine) healthy(ctx context.Context) []string {
	if e.cfg.Health == nil {
		return nil
	}
	var ok []string
	for _, r := range e.cfg.Health(ctx) {
		if r.OK {
			ok = append(ok, r.Name)
		}
	}
	return ok
}

// degraded returns the first check of before that fails now, with why.
func (e *Engine) degraded(ctx context.Context, before []string) string {
	if e.cfg.Health == nil || len(before) == 0 {
		return ""
	}
	for _, r := range e.cfg.Health(ctx) {
		if !r.OK && slices.Contains(before, r.Name) {
			return fmt.Sprintf("%q: %s", r.Name, r.Detail)
		}
	}
	return ""
}
