package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// errNoPolicy: Run started before SetPolicy.
var errNoPolicy = errors.New("actions: no policy")

// firewallKinds are the cheap, kernel-expiring actions with their own
// hourly cap (actions.max_blocks_per_hour); every other kind counts toward
// actions.max_per_hour.
var firewallKinds = []string{BlockSource, BlockDestination, RateLimit}

func isFirewall(kind string) bool { return slices.Contains(firewallKinds, kind) }

// quota is what the hourly caps still allow in this step.
type quota struct {
	firewall, host       int
	maxFirewall, maxHost int
	usedHost             int
}

func (e *Engine) quota(ctx context.Context, p *schema.Policy, now time.Time) (quota, error) {
	since := now.Add(-time.Hour)
	fw, err := e.cfg.Store.CountAppliedSince(ctx, since, firewallKinds)
	if err != nil {
		return quota{}, err
	}
	all, err := e.cfg.Store.CountAppliedSince(ctx, since, nil)
	if err != nil {
		return quota{}, err
	}
	q := quota{maxFirewall: p.Actions.MaxBlocksPerHour, maxHost: p.Actions.MaxPerHour, usedHost: all - fw}
	if q.maxFirewall <= 0 {
		q.maxFirewall = 100000
	}
	q.firewall = q.maxFirewall - fw
	q.host = q.maxHost - q.usedHost
	if q.maxHost <= 0 {
		q.host = int(^uint(0) >> 1)
	}
	return q, nil
}

// pump takes every plan waiting in the queue, a batch at a time. A step
// that fails is logged and retried on the next Tick: the plans stay queued.
func (e *Engine) pump(ctx context.Context) {
	for ctx.Err() == nil {
		plans, err := e.cfg.Store.PendingPlans(ctx, e.cfg.Batch)
		if err != nil {
			e.log.Error("read the plan queue", "err", err)
			return
		}
		if len(plans) == 0 {
			return
		}
		if err := e.take(ctx, plans); err != nil {
			if ctx.Err() == nil {
				e.log.Error("carry out plans", "plans", len(plans), "err", err)
			}
			return
		}
	}
}

// pending is one (kind, target) of a step and the plans that asked for it.
type pending struct {
	r     Request
	plans []int64
	ttl   time.Duration
	a     *Action
}

// take carries out one batch of plans: each ends as a journal entry (or
// renews one in force) and the plan is marked taken in the same
// transaction. Firewall actions go to the host as one batch per kind.
func (e *Engine) take(ctx context.Context, plans []state.PlanRow) error {
	p, g, learning := e.current()
	if p == nil {
		return errNoPolicy
	}
	now := e.cfg.Now()
	q, err := e.quota(ctx, p, now)
	if err != nil {
		return err
	}
	tripped, err := e.tripped(ctx)
	if err != nil {
		return err
	}
	var decided []*Action
	var decidedPlans [][]int64
	batches := map[string][]*pending{}
	byKey := map[string]*pending{}
	var kinds []string
	for _, pl := range plans {
		r := Request{Plan: pl.ID, Incident: pl.Incident, Kind: pl.Action, Target: pl.Target, TTL: pl.TTL, Reason: pl.Reason}
		if _, batched := e.cfg.Executors[r.Kind].(Batcher); !batched {
			if _, err := e.do(ctx, r, pl.Time, &q); err != nil {
				return err
			}
			// do may have tripped the breaker (host cap): the rest of
			// this batch must see it.
			if !tripped {
				if tripped, err = e.tripped(ctx); err != nil {
					return err
				}
			}
			continue
		}
		if a := e.verdict(r, p, g, learning, tripped, pl.Time, now); a != nil {
			decided, decidedPlans = append(decided, a), append(decidedPlans, []int64{pl.ID})
			continue
		}
		key := r.Kind + " " + r.Target
		if it := byKey[key]; it != nil {
			it.plans = append(it.plans, pl.ID)
			continue
		}
		it := &pending{r: r, plans: []int64{pl.ID}, ttl: e.ttl(p, r)}
		byKey[key] = it
		if batches[r.Kind] == nil {
			kinds = append(kinds, r.Kind)
		}
		batches[r.Kind] = append(batches[r.Kind], it)
	}
	if err := e.journalDecided(ctx, decided, decidedPlans); err != nil {
		return err
	}
	for _, k := range kinds {
		if err := e.applyBatch(ctx, e.cfg.Executors[k].(Batcher), batches[k], p, &q, now); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) ttl(p *schema.Policy, r Request) time.Duration {
	ttl := r.TTL
	if ttl <= 0 {
		ttl = p.Actions.TTLOf(r.Kind).D()
	}
	if max := p.Actions.MaxTTL.D(); max > 0 && ttl > max {
		ttl = max
	}
	return ttl
}

// verdict returns the journal entry of a request that ends before the host
// is touched: refused by the guard, learning, observe mode, no executor,
// circuit breaker, or lapsed (planned longer ago than its TTL: the agent
// was down). Nil means it goes ahead.
func (e *Engine) verdict(r Request, p *schema.Policy, g *Guard, learning, tripped bool, planned, now time.Time) *Action {
	a := e.newAction(r)
	set := func(status, note, msg string) *Action {
		a.Status, a.Note, a.msg = status, note, msg
		return &a
	}
	if why := g.Refuse(r.Kind, r.Target); why != "" {
		return set(StatusRefused, "never touched: "+why, "refused: "+why)
	}
	ttl := e.ttl(p, r)
	switch {
	case learning:
		return set(StatusSuppressed, "learning period: plans are recorded, nothing is applied", "suppressed (learning period)")
	case p.Mode == "observe":
		return set(StatusSuppressed, "observe mode: nothing is applied", "suppressed (observe mode)")
	case e.cfg.Executors[r.Kind] == nil:
		return set(StatusFailed, "not available on this host", "failed: no executor for "+r.Kind+" on this host")
	case tripped:
		return set(StatusSuppressed, "circuit breaker tripped: observe-only until `picket actions resume`", "suppressed (circuit breaker)")
	case !planned.IsZero() && !oneShot(e.cfg.Executors[r.Kind]) && !now.Before(planned.Add(ttl)):
		why := fmt.Sprintf("lapsed: planned at %s for %s, which ended before it could be carried out (the agent was not running)",
			planned.UTC().Format(time.RFC3339), short(ttl))
		return set(StatusSuppressed, why, "suppressed ("+why+")")
	}
	return nil
}

// Do takes one request through guard → snapshot → apply → health check
// now, outside the queue, and returns the journal entry as it ended.
func (e *Engine) Do(ctx context.Context, r Request) (Action, error) {
	p, _, _ := e.current()
	if p == nil {
		return Action{}, errNoPolicy
	}
	q, err := e.quota(ctx, p, e.cfg.Now())
	if err != nil {
		return Action{}, err
	}
	return e.do(ctx, r, time.Time{}, &q)
}

func (e *Engine) do(ctx context.Context, r Request, planned time.Time, q *quota) (Action, error) {
	p, g, learning := e.current()
	if p == nil {
		return Action{}, errNoPolicy
	}
	now := e.cfg.Now()
	tripped, err := e.tripped(ctx)
	if err != nil {
		return Action{}, err
	}
	if a := e.verdict(r, p, g, learning, tripped, planned, now); a != nil {
		return *a, e.journalNew(ctx, a, a.msg, r.Plan)
	}
	x := e.cfg.Executors[r.Kind]
	ttl := e.ttl(p, r)
	if renewed, err := e.renew(ctx, x, r, ttl, now); renewed || err != nil {
		return Action{}, err
	}
	a := e.newAction(r)
	if over, err := e.overCap(ctx, r.Kind, q, now); err != nil {
		return a, err
	} else if over != "" {
		a.Status, a.Note = StatusSuppressed, over
		return a, e.journalNew(ctx, &a, "suppressed ("+over+")", r.Plan)
	}
	one := oneShot(x)
	if !one {
		a.Expires = now.Add(ttl)
	}
	a.Healthy = e.healthy(ctx)
	undo, err := x.Snapshot(ctx, &a)
	if err != nil {
		a.Status, a.Note = StatusFailed, "snapshot: "+err.Error()
		return a, e.journalNew(ctx, &a, "failed before any change: "+a.Note, r.Plan)
	}
	a.Undo, a.Status = undo, StatusApplying
	// Journaled before the host is touched: a crash from here on leaves
	// an entry the reconciler undoes from its snapshot.
	if err := e.journalNew(ctx, &a, "", r.Plan); err != nil {
		return a, err
	}
	note, err := x.Apply(ctx, &a)
	if err != nil {
		rerr := x.Revert(ctx, &a)
		a.Status, a.Ended, a.Note = StatusFailed, e.cfg.Now(), "apply: "+err.Error()
		if rerr != nil {
			a.Note += "; undo: " + rerr.Error()
		}
		return a, e.journal(ctx, &a, "failed: "+a.Note)
	}
	a.Applied, a.Note = e.cfg.Now(), note
	e.used(q, r.Kind)
	if one {
		a.Status, a.Ended = StatusDone, a.Applied
		e.noteApplied(a.Incident)
		return a, e.journal(ctx, &a, "done: "+note)
	}
	a.Status = StatusApplied
	if err := e.journal(ctx, &a, fmt.Sprintf("applied for %s (until %s): %s", short(ttl), a.Expires.Format(time.RFC3339), note)); err != nil {
		return a, err
	}
	if failed := e.degraded(ctx, a.Healthy); failed != "" {
		return a, e.revert(ctx, &a, StatusRolledBack, "health check failed after apply: "+failed)
	}
	e.noteApplied(a.Incident)
	return a, nil
}

func (e *Engine) used(q *quota, kind string) {
	if isFirewall(kind) {
		q.firewall--
	} else {
		q.host--
		q.usedHost++
	}
}

// overCap says why an action of kind may not be applied under the hourly
// caps, or "". The host cap trips the circuit breaker (something is wrong:
// a flood of kills is never normal); the firewall cap only stops new
// blocks until the hour slides, audited once an hour.
func (e *Engine) overCap(ctx context.Context, kind string, q *quota, now time.Time) (string, error) {
	if isFirewall(kind) {
		if q.firewall > 0 {
			return "", nil
		}
		why := fmt.Sprintf("hourly block cap reached: %d firewall actions in the last hour (actions.max_blocks_per_hour); not applied, blocks resume as the hour slides", q.maxFirewall)
		if now.Sub(e.capNoted) >= time.Minute {
			// Once a minute at most: status keeps showing it while it
			// holds; the audit says so once an hour.
			first := now.Sub(e.capNoted) >= time.Hour
			e.capNoted = now
			err := e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
				if err := tx.SetMetaJSON(ctx, MetaBlockCap, BlockCap{At: now, Max: q.maxFirewall}); err != nil || !first {
					return err
				}
				_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindAction, Subject: "actions", Message: why})
				return err
			})
			if first {
				e.log.Warn("hourly block cap reached; new blocks are suppressed until the hour slides", "max_blocks_per_hour", q.maxFirewall)
			}
			if err != nil {
				return why, err
			}
		}
		return why, nil
	}
	if q.host > 0 {
		return "", nil
	}
	b := Breaker{Tripped: true, At: now, Count: q.usedHost, Max: q.maxHost}
	err := Trip(ctx, e.cfg.Store, b, fmt.Sprintf("circuit breaker tripped: %d actions in the last hour (actions.max_per_hour is %d); observe-only until an operator runs `picket actions resume`", q.usedHost, q.maxHost))
	e.log.Warn("circuit breaker tripped", "actions_last_hour", q.usedHost, "max", q.maxHost)
	return "circuit breaker tripped: observe-only until `picket actions resume`", err
}

// tripped reports whether the circuit breaker is tripped.
func (e *Engine) tripped(ctx context.Context) (bool, error) {
	var b Breaker
	if _, err := e.cfg.Store.MetaJSON(ctx, MetaBreaker, &b); err != nil {
		return false, err
	}
	return b.Tripped, nil
}

// renew extends an action of the same kind and target that is already in
// force instead of stacking a second one.
func (e *Engine) renew(ctx context.Context, x Executor, r Request, ttl time.Duration, now time.Time) (bool, error) {
	rows, err := e.cfg.Store.ActionsFor(ctx, r.Kind, []string{r.Target}, []string{StatusApplied})
	if err != nil || len(rows) == 0 {
		return false, err
	}
	a, err := fromRow(rows[0])
	if err != nil {
		return false, err
	}
	until := now.Add(ttl)
	if !until.After(a.Expires) {
		return true, e.takePlans(ctx, a.ID, r.Plan)
	}
	a.Expires = until
	if _, err := x.Apply(ctx, &a); err != nil {
		return true, fmt.Errorf("actions: renew %d: %w", a.ID, err)
	}
	a.Note = fmt.Sprintf("renewed by incident %d", r.Incident)
	return true, e.journal(ctx, &a, fmt.Sprintf("renewed until %s by incident %d: %s", until.Format(time.RFC3339), r.Incident, r.Reason), r.Plan)
}

// applyBatch applies one kind's new actions and renewals of a step: one
// executor call applies them all, one transaction journals the outcomes
// with their plans taken, and one health check before and after covers
// the batch.
func (e *Engine) applyBatch(ctx context.Context, bx Batcher, items []*pending, p *schema.Policy, q *quota, now time.Time) error {
	kind := items[0].r.Kind
	targets := make([]string, len(items))
	for i, it := range items {
		targets[i] = it.r.Target
	}
	rows, err := e.cfg.Store.ActionsFor(ctx, kind, targets, []string{StatusApplied})
	if err != nil {
		return err
	}
	live := map[string]*Action{}
	for _, row := range rows {
		a, err := fromRow(row)
		if err != nil {
			return err
		}
		live[a.Target] = &a
	}
	var fresh, renewals, capped []*pending
	var keep []*pending // in force long enough already: plans point at it
	for _, it := range items {
		if a := live[it.r.Target]; a != nil {
			it.a = a
			if until := now.Add(it.ttl); until.After(a.Expires) {
				a.Expires = until
				a.Note = fmt.Sprintf("renewed by incident %d", it.r.Incident)
				renewals = append(renewals, it)
			} else {
				keep = append(keep, it)
			}
			continue
		}
		over, err := e.overCap(ctx, kind, q, now)
		if err != nil {
			return err
		}
		a := e.newAction(it.r)
		it.a = &a
		if over != "" {
			a.Status, a.Note, a.msg = StatusSuppressed, over, "suppressed ("+over+")"
			capped = append(capped, it)
			continue
		}
		e.used(q, kind)
		a.Expires = now.Add(it.ttl)
		fresh = append(fresh, it)
	}
	healthy := e.healthy(ctx)
	for _, it := range fresh {
		it.a.Healthy = healthy
	}
	work := make([]*Action, 0, len(fresh)+len(renewals))
	var workItems []*pending
	for _, group := range [][]*pending{fresh, renewals} {
		for _, it := range group {
			work, workItems = append(work, it.a), append(workItems, it)
		}
	}
	var notes []string
	var errs []error
	if len(work) > 0 {
		// Applied before anything is journaled: a crash in between leaves
		// set elements no entry accounts for (the reconciler's sweep
		// removes them at start) and the plans still queued (taken again),
		// so one transaction per batch records everything.
		notes, errs = bx.ApplyBatch(ctx, work)
	}
	var failed []*Action
	var incidents []int64
	applied := e.cfg.Now()
	err = e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		entries := make([]audit.Entry, 0, len(work)+len(capped))
		for i, a := range work {
			it := workItems[i]
			renewal := i >= len(fresh)
			var msg string
			switch {
			case errs[i] != nil && renewal:
				a.Note = "renewal failed: " + errs[i].Error()
				msg = a.Note
			case errs[i] != nil:
				a.Status, a.Ended, a.Note = StatusFailed, applied, "apply: "+errs[i].Error()
				msg = "failed: " + a.Note
				failed = append(failed, a)
			case renewal:
				msg = fmt.Sprintf("renewed until %s by incident %d: %s", a.Expires.Format(time.RFC3339), it.r.Incident, notes[i])
			default:
				a.Status, a.Applied, a.Note = StatusApplied, applied, notes[i]
				msg = fmt.Sprintf("applied for %s (until %s): %s", short(a.Expires.Sub(now)), a.Expires.Format(time.RFC3339), notes[i])
				incidents = append(incidents, a.Incident)
			}
			if renewal {
				if err := tx.PutAction(ctx, a.row()); err != nil {
					return err
				}
			} else {
				id, err := tx.AddAction(ctx, a.row())
				if err != nil {
					return err
				}
				a.ID = id
			}
			entries = append(entries, auditEntry(a, applied, msg))
		}
		for _, it := range capped {
			id, err := tx.AddAction(ctx, it.a.row())
			if err != nil {
				return err
			}
			it.a.ID = id
			entries = append(entries, auditEntry(it.a, applied, it.a.msg))
		}
		if err := tx.AppendAudits(ctx, entries); err != nil {
			return err
		}
		for _, group := range [][]*pending{fresh, capped, renewals, keep} {
			for _, it := range group {
				for _, pl := range it.plans {
					if err := tx.TakePlan(ctx, pl, it.a.ID); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		// Nothing should hold for a failed element; undo is idempotent.
		_ = bx.RevertBatch(ctx, failed)
	}
	if bad := e.degraded(ctx, healthy); bad != "" {
		var back []*Action
		for _, it := range fresh {
			if it.a.Status == StatusApplied {
				back = append(back, it.a)
			}
		}
		return e.revertMany(ctx, back, StatusRolledBack, func(*Action) string { return "health check failed after apply: " + bad })
	}
	e.noteApplied(incidents...)
	return nil
}

// journalDecided journals requests that ended before touching the host,
// with their plans taken, in one transaction.
func (e *Engine) journalDecided(ctx context.Context, as []*Action, plans [][]int64) error {
	if len(as) == 0 {
		return nil
	}
	now := e.cfg.Now()
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		entries := make([]audit.Entry, 0, len(as))
		for i, a := range as {
			id, err := tx.AddAction(ctx, a.row())
			if err != nil {
				return err
			}
			a.ID = id
			for _, pl := range plans[i] {
				if err := tx.TakePlan(ctx, pl, id); err != nil {
					return err
				}
			}
			entries = append(entries, auditEntry(a, now, a.msg))
		}
		return tx.AppendAudits(ctx, entries)
	})
}

func (e *Engine) takePlans(ctx context.Context, action int64, plans ...int64) error {
	if len(plans) == 0 || (len(plans) == 1 && plans[0] == 0) {
		return nil
	}
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		for _, pl := range plans {
			if pl == 0 {
				continue
			}
			if err := tx.TakePlan(ctx, pl, action); err != nil {
				return err
			}
		}
		return nil
	})
}
