package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/actions/health"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// MetaBreaker holds the circuit breaker's state.
const MetaBreaker = "actions_breaker"

// Breaker is the circuit breaker's persisted state.
type Breaker struct {
	Tripped bool      `json:"tripped"`
	At      time.Time `json:"at,omitzero"`
	Count   int       `json:"count,omitempty"`
	Max     int       `json:"max,omitempty"`
}

// Config wires an Engine.
type Config struct {
	Store *state.Store
	// Executors by action name; an action without one is journaled as
	// failed ("not available on this host").
	Executors map[string]Executor
	// Health runs the configured health checks; nil means none.
	Health func(ctx context.Context) []health.Result
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Tick is how often expiries and rollback requests are looked at
	// (1 s when 0).
	Tick time.Duration
	// Queue bounds the requests waiting for the engine (256 when 0).
	Queue int
}

// Engine applies, keeps, expires and repairs actions. Run owns the host
// side; the setters may be called from any goroutine.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	reqs    chan Request
	kick    chan struct{}
	applied chan int64

	mu       sync.Mutex
	policy   *schema.Policy
	guard    *Guard
	learning bool
	// lastHealth is when the periodic health check last ran.
	lastHealth time.Time
}

// New returns an engine for cfg; SetPolicy must be called before Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("actions: no state store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 256
	}
	return &Engine{cfg: cfg, log: cfg.Logger.With("subsystem", "actions"), reqs: make(chan Request, cfg.Queue),
		kick: make(chan struct{}, 1), applied: make(chan int64, 64), guard: &Guard{}}, nil
}

// SetPolicy swaps the policy and the never-touch set (on every reload).
func (e *Engine) SetPolicy(p *schema.Policy, g *Guard) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.policy, e.guard = p, g
}

// SetLearning says whether the learning period runs (nothing is applied).
func (e *Engine) SetLearning(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.learning = on
}

func (e *Engine) current() (*schema.Policy, *Guard, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policy, e.guard, e.learning
}

// Submit queues requests for Run. It never blocks the caller (the agent's
// main loop): a request that does not fit is journaled as failed.
func (e *Engine) Submit(ctx context.Context, reqs ...Request) {
	for _, r := range reqs {
		select {
		case e.reqs <- r:
		default:
			a := e.newAction(r)
			a.Status, a.Note = StatusFailed, "dropped: the action queue is full"
			if err := e.journalNew(ctx, &a, "dropped (queue full)"); err != nil {
				e.log.Error("journal dropped action", "err", err)
			}
		}
	}
}

// Applied delivers the incident of each action that took hold (the agent
// marks it contained). Best effort: a full channel drops the note, the
// journal keeps the fact.
func (e *Engine) Applied() <-chan int64 { return e.applied }

func (e *Engine) noteApplied(incident int64) {
	select {
	case e.applied <- incident:
	default:
	}
}

// Nudge asks Run to reconcile at once (the firewall saw its table go).
func (e *Engine) Nudge() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run reconciles once, then applies queued requests, expires actions,
// carries out rollback requests and re-runs health checks and the
// reconciler on their periods, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Reconcile(ctx, true); err != nil && ctx.Err() == nil {
		e.log.Error("reconcile at start", "err", err)
	}
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	lastReconcile := e.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-e.reqs:
			if _, err := e.Do(ctx, r); err != nil && ctx.Err() == nil {
				e.log.Error("action", "kind", r.Kind, "target", r.Target, "err", err)
			}
		case <-e.kick:
			if err := e.Reconcile(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Error("reconcile", "err", err)
			}
			lastReconcile = e.cfg.Now()
		case <-tick.C:
			now := e.cfg.Now()
			if err := e.Expire(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("expire", "err", err)
			}
			if err := e.rollbackRequested(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("rollback", "err", err)
			}
			p, _, _ := e.current()
			if p != nil && now.Sub(lastReconcile) >= p.Actions.ReconcileInterval.D() {
				lastReconcile = now
				if err := e.Reconcile(ctx, false); err != nil && ctx.Err() == nil {
					e.log.Error("reconcile", "err", err)
				}
			}
			if p != nil && now.Sub(e.lastHealth) >= p.Actions.Health.Interval.D() {
				e.lastHealth = now
				if err := e.HealthTick(ctx); err != nil && ctx.Err() == nil {
					e.log.Error("health", "err", err)
				}
			}
		}
	}
}

func (e *Engine) newAction(r Request) Action {
	return Action{Incident: r.Incident, Kind: r.Kind, Target: r.Target, Reason: r.Reason, Created: e.cfg.Now()}
}

// Do takes one request through guard → snapshot → apply → health check and
// returns the journal entry as it ended.
func (e *Engine) Do(ctx context.Context, r Request) (Action, error) {
	p, g, learning := e.current()
	if p == nil {
		return Action{}, errors.New("actions: no policy")
	}
	a := e.newAction(r)
	now := a.Created
	ttl := r.TTL
	if ttl <= 0 {
		ttl = p.Actions.TTLOf(r.Kind).D()
	}
	if max := p.Actions.MaxTTL.D(); max > 0 && ttl > max {
		ttl = max
	}
	x := e.cfg.Executors[r.Kind]

	if why := g.Refuse(r.Kind, r.Target); why != "" {
		a.Status, a.Note = StatusRefused, "never touched: "+why
		return a, e.journalNew(ctx, &a, "refused: "+why)
	}
	switch {
	case learning:
		a.Status, a.Note = StatusSuppressed, "learning period: plans are recorded, nothing is applied"
		return a, e.journalNew(ctx, &a, "suppressed (learning period)")
	case p.Mode == "observe":
		a.Status, a.Note = StatusSuppressed, "observe mode: nothing is applied"
		return a, e.journalNew(ctx, &a, "suppressed (observe mode)")
	case x == nil:
		a.Status, a.Note = StatusFailed, "not available on this host"
		return a, e.journalNew(ctx, &a, "failed: no executor for "+r.Kind+" on this host")
	}
	if tripped, err := e.breaker(ctx, p, now); err != nil {
		return a, err
	} else if tripped {
		a.Status, a.Note = StatusSuppressed, "circuit breaker tripped: observe-only until `picket actions resume`"
		return a, e.journalNew(ctx, &a, "suppressed (circuit breaker)")
	}
	if renewed, err := e.renew(ctx, x, r, ttl, now); renewed || err != nil {
		return Action{}, err
	}

	one := oneShot(x)
	if !one {
		a.Expires = now.Add(ttl)
	}
	a.Healthy = e.healthy(ctx)
	undo, err := x.Snapshot(ctx, &a)
	if err != nil {
		a.Status, a.Note = StatusFailed, "snapshot: "+err.Error()
		return a, e.journalNew(ctx, &a, "failed before any change: "+a.Note)
	}
	a.Undo, a.Status = undo, StatusApplying
	// Journaled before the host is touched: a crash from here on leaves
	// an entry the reconciler undoes from its snapshot.
	if err := e.journalNew(ctx, &a, ""); err != nil {
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
		return a, e.revert(ctx, x, &a, StatusRolledBack, "health check failed after apply: "+failed)
	}
	e.noteApplied(a.Incident)
	return a, nil
}

// renew extends an action of the same kind and target that is already in
// force instead of stacking a second one.
func (e *Engine) renew(ctx context.Context, x Executor, r Request, ttl time.Duration, now time.Time) (bool, error) {
	live, err := List(ctx, e.cfg.Store, 0, StatusApplied)
	if err != nil {
		return false, err
	}
	for i := range live {
		a := &live[i]
		if a.Kind != r.Kind || a.Target != r.Target {
			continue
		}
		until := now.Add(ttl)
		if !until.After(a.Expires) {
			return true, nil
		}
		a.Expires = until
		if _, err := x.Apply(ctx, a); err != nil {
			return true, fmt.Errorf("actions: renew %d: %w", a.ID, err)
		}
		a.Note = fmt.Sprintf("renewed by incident %d", r.Incident)
		return true, e.journal(ctx, a, fmt.Sprintf("renewed until %s by incident %d: %s", until.Format(time.RFC3339), r.Incident, r.Reason))
	}
	return false, nil
}

// breaker reports whether the circuit breaker is (or now becomes) tripped.
func (e *Engine) breaker(ctx context.Context, p *schema.Policy, now time.Time) (bool, error) {
	var b Breaker
	if _, err := e.cfg.Store.MetaJSON(ctx, MetaBreaker, &b); err != nil {
		return false, err
	}
	if b.Tripped {
		return true, nil
	}
	n, err := e.cfg.Store.CountActionsSince(ctx, now.Add(-time.Hour), counted)
	if err != nil {
		return false, err
	}
	max := p.Actions.MaxPerHour
	if max <= 0 || n < max {
		return false, nil
	}
	b = Breaker{Tripped: true, At: now, Count: n, Max: max}
	err = Trip(ctx, e.cfg.Store, b, fmt.Sprintf("circuit breaker tripped: %d actions in the last hour (actions.max_per_hour is %d); observe-only until an operator runs `picket actions resume`", n, max))
	e.log.Warn("circuit breaker tripped", "actions_last_hour", n, "max", max)
	return true, err
}

// Trip records a tripped breaker and audits why, in one transaction: the
// engine's hourly cap and `picket emergency-stop` both stop the agent's
// actions through it.
func Trip(ctx context.Context, st *state.Store, b Breaker, why string) error {
	b.Tripped = true
	data, _ := json.Marshal(b)
	return st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaBreaker, b); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: b.At, Kind: audit.KindBreaker, Subject: "actions", Message: why, Data: data})
		return err
	})
}

// Resume resets a tripped circuit breaker (`picket actions resume`).
func Resume(ctx context.Context, st *state.Store, now time.Time, who string) (bool, error) {
	var b Breaker
	if _, err := st.MetaJSON(ctx, MetaBreaker, &b); err != nil {
		return false, err
	}
	if !b.Tripped {
		return false, nil
	}
	return true, st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaBreaker, Breaker{}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindBreaker, Subject: "actions",
			Message: fmt.Sprintf("circuit breaker reset by %s (it tripped at %s after %d actions)", who, b.At.Format(time.RFC3339), b.Count)})
		return err
	})
}

// Expire rolls back every applied action whose time is up.
func (e *Engine) Expire(ctx context.Context) error {
	live, err := List(ctx, e.cfg.Store, 0, StatusApplied)
	if err != nil {
		return err
	}
	now := e.cfg.Now()
	var errs []error
	for i := range live {
		a := &live[i]
		if a.Expires.IsZero() || now.Before(a.Expires) {
			continue
		}
		errs = append(errs, e.revert(ctx, e.cfg.Executors[a.Kind], a, StatusExpired, "expired after "+short(a.Expires.Sub(a.Applied))))
	}
	return errors.Join(errs...)
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
	return a, e.revert(ctx, e.cfg.Executors[a.Kind], &a, StatusRolledBack, why)
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
	if err != nil {
		return err
	}
	var errs []error
	for i := range reqs {
		a := &reqs[i]
		errs = append(errs, e.revert(ctx, e.cfg.Executors[a.Kind], a, StatusRolledBack, a.Note))
	}
	return errors.Join(errs...)
}

// revert undoes a and journals the outcome as status with why. A failed
// undo leaves the entry in force (so the reconciler tries again) and says
// so.
func (e *Engine) revert(ctx context.Context, x Executor, a *Action, status, why string) error {
	if x == nil {
		a.Note = "cannot undo: no executor for " + a.Kind + " on this host"
		return e.journal(ctx, a, a.Note)
	}
	if err := x.Revert(ctx, a); err != nil {
		a.Note = fmt.Sprintf("%s; undo failed (will retry): %v", why, err)
		if a.Status == StatusRollbackRequested {
			a.Status = StatusApplied
		}
		jerr := e.journal(ctx, a, a.Note)
		return errors.Join(fmt.Errorf("actions: undo %d: %w", a.ID, err), jerr)
	}
	a.Status, a.Ended, a.Note = status, e.cfg.Now(), why
	return e.journal(ctx, a, status+": "+why)
}

// Reconcile compares the journal with the host: at start it undoes what
// the agent was applying when it died and rolls back what expired while it
// was down; always, it re-asserts what the host lost and sweeps orphans.
func (e *Engine) Reconcile(ctx context.Context, atStart bool) error {
	live, err := List(ctx, e.cfg.Store, 0, inForce...)
	if err != nil {
		return err
	}
	now := e.cfg.Now()
	var errs []error
	var kept []Action
	for i := range live {
		a := &live[i]
		x := e.cfg.Executors[a.Kind]
		switch {
		case a.Status == StatusApplying && atStart:
			errs = append(errs, e.revert(ctx, x, a, StatusRolledBack, "the agent stopped while applying it; undone from its snapshot"))
			continue
		case a.Status == StatusApplying:
			continue // being applied by Do right now (same goroutine: not reached)
		case a.Status == StatusRollbackRequested:
			errs = append(errs, e.revert(ctx, x, a, StatusRolledBack, a.Note))
			continue
		case !a.Expires.IsZero() && !now.Before(a.Expires):
			why := "expired"
			if atStart {
				why = "expired while the agent was not running"
			}
			errs = append(errs, e.revert(ctx, x, a, StatusExpired, why))
			continue
		case x == nil:
			continue
		}
		ok, err := x.InForce(ctx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("actions: check %d: %w", a.ID, err))
			kept = append(kept, *a)
			continue
		}
		if !ok {
			note, err := x.Apply(ctx, a)
			if err != nil {
				errs = append(errs, fmt.Errorf("actions: re-assert %d: %w", a.ID, err))
			} else {
				a.Note = "re-asserted: " + note
				errs = append(errs, e.journal(ctx, a, "re-asserted: the host no longer carried it (firewall flushed, or changed by hand)"))
			}
		}
		kept = append(kept, *a)
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

// HealthTick re-runs the health checks while actions are in force and
// rolls back, newest first, each action whose healthy checks now fail.
func (e *Engine) HealthTick(ctx context.Context) error {
	live, err := List(ctx, e.cfg.Store, 0, StatusApplied)
	if err != nil || len(live) == 0 || e.cfg.Health == nil {
		return err
	}
	failing := map[string]string{}
	for _, r := range e.cfg.Health(ctx) {
		if !r.OK {
			failing[r.Name] = r.Detail
		}
	}
	var errs []error
	for i := len(live) - 1; i >= 0; i-- {
		a := &live[i]
		for _, h := range a.Healthy {
			if d, bad := failing[h]; bad {
				errs = append(errs, e.revert(ctx, e.cfg.Executors[a.Kind], a, StatusRolledBack,
					fmt.Sprintf("health check %q failed while it was in force: %s", h, d)))
				break
			}
		}
	}
	return errors.Join(errs...)
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

// journalNew inserts a; a non-empty msg is audited in the same transaction.
func (e *Engine) journalNew(ctx context.Context, a *Action, msg string) error {
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		id, err := tx.AddAction(ctx, a.row())
		if err != nil {
			return err
		}
		a.ID = id
		if msg == "" {
			return nil
		}
		return appendAudit(ctx, tx, a, e.cfg.Now(), msg)
	})
}

// journal rewrites a and audits msg in one transaction.
func (e *Engine) journal(ctx context.Context, a *Action, msg string) error {
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutAction(ctx, a.row()); err != nil {
			return err
		}
		return appendAudit(ctx, tx, a, e.cfg.Now(), msg)
	})
}

func (e *Engine) auditOnly(ctx context.Context, now time.Time, subject, msg string) error {
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindAction, Subject: subject, Message: msg})
		return err
	})
}

func appendAudit(ctx context.Context, tx *state.Tx, a *Action, now time.Time, msg string) error {
	data, _ := json.Marshal(map[string]any{"id": a.ID, "incident": a.Incident, "kind": a.Kind, "target": a.Target,
		"status": a.Status, "expires": a.Expires, "reason": a.Reason})
	_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindAction, Subject: fmt.Sprintf("action:%d", a.ID),
		Message: fmt.Sprintf("%s %s (incident %d): %s — %s", a.Kind, a.Target, a.Incident, msg, a.Reason), Data: data})
	return err
}

func sortedKeys(m map[string]Executor) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// short renders a duration to the second without zero units ("1h").
func short(d time.Duration) string { return schema.ShortDuration(d.Round(time.Second)) }
