package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/picket-agent/picket/state"
)

// Action names: the safe set, a public contract shared with the CUE schema
// (#ActionName), the journal and `picket actions`.
const (
	BlockSource      = "block-source"
	BlockDestination = "block-destination"
	RateLimit        = "rate-limit"
	KillTree         = "kill-tree"
	DisableUser      = "disable-user"
	EndSessions      = "end-sessions"
	PauseSSH         = "pause-ssh"
	IsolateContainer = "isolate-container"
	Containment      = "containment"
)

// Journal statuses.
const (
	// StatusApplying: journaled with its snapshot, apply under way. Found
	// at start, it means the agent died mid-apply: the reconciler undoes it.
	StatusApplying = "applying"
	// StatusApplied: in force until Expires.
	StatusApplied = "applied"
	// StatusDone: a one-shot action (a kill) that has nothing to undo.
	StatusDone = "done"
	// StatusRollbackRequested: an operator asked for a rollback; the
	// engine (or the CLI when no agent runs) carries it out.
	StatusRollbackRequested = "rollback-requested"
	StatusExpired           = "expired"
	StatusRolledBack        = "rolled-back"
	StatusFailed            = "failed"
	// StatusRefused: a safety guard refused it.
	StatusRefused = "refused"
	// StatusSuppressed: learning period, observe mode or circuit breaker.
	StatusSuppressed = "suppressed"
)

// InForce lists the statuses of actions that hold something on the host.
var inForce = []string{StatusApplying, StatusApplied, StatusRollbackRequested}

// InForceStatuses returns the statuses of actions that may hold something
// on the host (callers list them; the slice is a copy).
func InForceStatuses() []string { return append([]string(nil), inForce...) }

// Errors.
var (
	// ErrUnknownAction: no executor for the action's kind on this host.
	ErrUnknownAction = errors.New("actions: no executor for this action")
	// ErrNotInForce: a rollback of an action that holds nothing.
	ErrNotInForce = errors.New("actions: action is not in force")
)

// Request is a plan handed to the engine.
type Request struct {
	Incident int64
	Kind     string
	Target   string
	Reason   string
	TTL      time.Duration
	// Plan is the queued plan this request carries out (0: none); it is
	// marked taken in the transaction that journals the outcome.
	Plan int64
}

// Action is a journal entry as the engine and executors see it.
type Action struct {
	ID       int64
	Incident int64
	Kind     string
	Target   string
	Reason   string
	Status   string
	Created  time.Time
	Applied  time.Time
	Expires  time.Time
	Ended    time.Time
	Note     string
	// Undo is the executor's snapshot, taken before apply.
	Undo json.RawMessage
	// Healthy names the health checks that passed just before apply: only
	// those can blame this action when they fail later.
	Healthy []string

	// msg is the audit message of an entry decided before the host was
	// touched (engine only, not stored).
	msg string
}

// envelope is what the journal's snapshot column holds.
type envelope struct {
	Undo    json.RawMessage `json:"undo,omitempty"`
	Healthy []string        `json:"healthy,omitempty"`
}

func fromRow(r state.ActionRow) (Action, error) {
	a := Action{ID: r.ID, Incident: r.Incident, Kind: r.Kind, Target: r.Target, Reason: r.Reason, Status: r.Status,
		Created: r.Created, Applied: r.Applied, Expires: r.Expires, Ended: r.Ended, Note: r.Note}
	if len(r.Snapshot) > 0 {
		var e envelope
		if err := json.Unmarshal(r.Snapshot, &e); err != nil {
			return a, fmt.Errorf("actions: journal entry %d: snapshot: %w", r.ID, err)
		}
		a.Undo, a.Healthy = e.Undo, e.Healthy
	}
	return a, nil
}

func (a *Action) row() state.ActionRow {
	var snap []byte
	if len(a.Undo) > 0 || len(a.Healthy) > 0 {
		snap, _ = json.Marshal(envelope{Undo: a.Undo, Healthy: a.Healthy})
	}
	return state.ActionRow{ID: a.ID, Incident: a.Incident, Kind: a.Kind, Target: a.Target, Reason: a.Reason, Status: a.Status,
		Created: a.Created, Applied: a.Applied, Expires: a.Expires, Ended: a.Ended, Snapshot: snap, Note: a.Note}
}

// List returns the journal, oldest first; statuses filter when given.
func List(ctx context.Context, st *state.Store, limit int, statuses ...string) ([]Action, error) {
	rows, err := st.Actions(ctx, state.ActionFilter{Statuses: statuses, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Action, 0, len(rows))
	for _, r := range rows {
		a, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Executor carries out one kind of action. Implementations are idempotent:
// the reconciler may Apply an action that is partly in force, and Revert
// one that is already gone.
type Executor interface {
	// Snapshot records what Apply is about to change, so the change can be
	// undone after a crash in the middle of Apply. It may return nil.
	Snapshot(ctx context.Context, a *Action) (json.RawMessage, error)
	// Apply makes the action hold on the host until a.Expires. The note
	// (what was done, in words) goes to the journal and the audit entry.
	Apply(ctx context.Context, a *Action) (note string, err error)
	// Revert restores what a.Undo recorded.
	Revert(ctx context.Context, a *Action) error
	// InForce reports whether the host still carries the action.
	InForce(ctx context.Context, a *Action) (bool, error)
}

// OneShot is implemented by executors whose action happens once and has
// nothing to undo or expire (killing a process tree).
type OneShot interface{ OneShot() bool }

// Batcher is implemented by executors that apply, check and undo many
// actions of their kind in one step (nftables set elements: one netlink
// batch per chunk). The engine uses it for every action of the kind, so a
// burst of 50,000 blocks costs a few kernel round trips, not 50,000.
// Implementations are idempotent like Executor's methods, and are
// Sweepers too: the engine journals a batch after applying it, so a crash
// in between leaves host state that only a sweep accounts for (the plans
// stay queued and are taken again).
type Batcher interface {
	// ApplyBatch applies each action; errs[i] is as[i]'s outcome, notes[i]
	// its note when it succeeded.
	ApplyBatch(ctx context.Context, as []*Action) (notes []string, errs []error)
	// RevertBatch undoes each action; errs[i] is as[i]'s outcome.
	RevertBatch(ctx context.Context, as []*Action) []error
	// InForceBatch reports for each action whether the host carries it,
	// from one read of the host's state.
	InForceBatch(ctx context.Context, as []*Action) ([]bool, error)
}

// Sweeper is implemented by executors that can find state on the host that
// no journal entry accounts for (orphans, e.g. after a lost journal write)
// and remove it.
type Sweeper interface {
	Sweep(ctx context.Context, live []Action) (removed []string, err error)
}

func oneShot(x Executor) bool {
	o, ok := x.(OneShot)
	return ok && o.OneShot()
}
