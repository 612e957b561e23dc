package actions

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/picket-agent/picket/actions/health"
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
	// Emergency is set when the trip came from an emergency stop.
	Emergency bool `json:"emergency,omitempty"`
}

// MetaBlockCap holds when the hourly cap of firewall actions was last
// reached (status shows it while it holds).
const MetaBlockCap = "actions_block_cap"

// BlockCap is the block cap's persisted state.
type BlockCap struct {
	At  time.Time `json:"at"`
	Max int       `json:"max"`
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
	// Tick is how often expiries, rollback requests, the emergency-stop
	// flag and plans left in the queue are looked at (1 s when 0).
	Tick time.Duration
	// Batch bounds the plans taken from the queue at once (1024 when 0):
	// one journal transaction per step and, for the firewall, one netlink
	// batch per chunk.
	Batch int
	// Stopped reports the emergency-stop flag that the standalone script
	// (or `picket emergency-stop`) leaves in the state directory, with its
	// description ("emergency stop at TIME by WHO"); nil means there is no
	// such flag.
	Stopped func() (what string, ok bool)
}

// Engine applies, keeps, expires and repairs actions. Its queue is the
// plans table: the agent commits plans and calls Wake, Run takes them in
// order and in batches, so a burst waits in the database instead of being
// dropped, and a crash or restart loses none. Run owns the host side; the
// setters may be called from any goroutine.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	kick chan struct{}

	mu       sync.Mutex
	policy   *schema.Policy
	guard    *Guard
	learning bool
	// applied holds the incidents whose actions took hold since the last
	// TakeApplied; appliedKick says there are some.
	applied     []int64
	appliedKick chan struct{}

	// Run goroutine only.
	lastHealth time.Time
	capNoted   time.Time // the block cap's last audit entry
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
	if cfg.Batch <= 0 {
		cfg.Batch = 1024
	}
	return &Engine{cfg: cfg, log: cfg.Logger.With("subsystem", "actions"), wake: make(chan struct{}, 1),
		kick: make(chan struct{}, 1), appliedKick: make(chan struct{}, 1), guard: &Guard{}}, nil
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

// Wake tells Run that plans were committed. It never blocks: plans wait in
// the database, and Run also looks every Tick.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Submit queues requests as plans in the journal's queue (one transaction)
// and wakes Run: the way in for callers that are not the pipeline (tests,
// manual decisions). Each request's incident must exist in state.
func (e *Engine) Submit(ctx context.Context, reqs ...Request) error {
	now := e.cfg.Now()
	err := e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		for _, r := range reqs {
			if _, err := tx.AddPlan(ctx, state.PlanRow{Incident: r.Incident, Time: now, Action: r.Kind, Target: r.Target,
				TTL: r.TTL, Level: "manual", Status: "planned", Reason: r.Reason}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.Wake()
	return nil
}

// Applied fires when actions took hold; TakeApplied says for which
// incidents (the agent marks them contained).
func (e *Engine) Applied() <-chan struct{} { return e.appliedKick }

// TakeApplied returns the incidents whose actions took hold since the last
// call, each once.
func (e *Engine) TakeApplied() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.applied
	e.applied = nil
	return out
}

func (e *Engine) noteApplied(incidents ...int64) {
	if len(incidents) == 0 {
		return
	}
	e.mu.Lock()
	e.applied = append(e.applied, incidents...)
	e.mu.Unlock()
	select {
	case e.appliedKick <- struct{}{}:
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

// Run reconciles once, then takes committed plans from the queue, expires
// actions, carries out rollback requests, honours the emergency-stop flag
// and re-runs health checks and the reconciler on their periods, until ctx
// ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Reconcile(ctx, true); err != nil && ctx.Err() == nil {
		e.log.Error("reconcile at start", "err", err)
	}
	e.pump(ctx)
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	lastReconcile := e.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
			e.pump(ctx)
		case <-e.kick:
			if err := e.Reconcile(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Error("reconcile", "err", err)
			}
			lastReconcile = e.cfg.Now()
		case <-tick.C:
			now := e.cfg.Now()
			if stopped, err := e.emergency(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("emergency stop", "err", err)
			} else if stopped {
				// Plans are still taken (and journaled as suppressed), so
				// none is left behind for after the resume.
				e.pump(ctx)
				continue
			}
			e.pump(ctx)
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

// emergency honours the emergency-stop flag: the circuit breaker trips
// (observe-only until `picket actions resume`, which removes the flag) and
// everything still in force is undone, so the agent re-creates nothing the
// standalone script took away. It reports whether the flag is set.
func (e *Engine) emergency(ctx context.Context) (bool, error) {
	if e.cfg.Stopped == nil {
		return false, nil
	}
	what, ok := e.cfg.Stopped()
	if !ok {
		return false, nil
	}
	var b Breaker
	if _, err := e.cfg.Store.MetaJSON(ctx, MetaBreaker, &b); err != nil {
		return true, err
	}
	now := e.cfg.Now()
	if !b.Tripped || !b.Emergency {
		b = Breaker{At: now, Emergency: true}
		if err := Trip(ctx, e.cfg.Store, b, what+": every action rolled back, observe-only until `picket actions resume`"); err != nil {
			return true, err
		}
		e.log.Warn("emergency stop flag found: circuit breaker tripped, undoing every action", "flag", what)
	}
	live, err := List(ctx, e.cfg.Store, 0, inForce...)
	if err != nil || len(live) == 0 {
		return true, err
	}
	return true, e.revertMany(ctx, ptrs(live), StatusRolledBack, func(*Action) string {
		return what + ": undone; observe-only until `picket actions resume`"
	})
}

func ptrs(as []Action) []*Action {
	out := make([]*Action, len(as))
	for i := range as {
		out[i] = &as[i]
	}
	return out
}
