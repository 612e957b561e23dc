package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

func (e *Engine) newAction(r Request) Action {
	return Action{Incident: r.Incident, Kind: r.Kind, Target: r.Target, Reason: r.Reason, Created: e.cfg.Now()}
}

// Trip records a tripped breaker and audits why, in one transaction: the
// engine's hourly cap, the emergency-stop flag and `picket emergency-stop`
// all stop the agent's actions through it.
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
	what := fmt.Sprintf("it tripped at %s after %d actions", b.At.Format(time.RFC3339), b.Count)
	if b.Emergency {
		what = "emergency stop at " + b.At.Format(time.RFC3339)
	}
	return true, st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaBreaker, Breaker{}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindBreaker, Subject: "actions",
			Message: fmt.Sprintf("circuit breaker reset by %s (%s)", who, what)})
		return err
	})
}

// journalNew inserts a with its plans taken; a non-empty msg is audited in
// the same transaction.
func (e *Engine) journalNew(ctx context.Context, a *Action, msg string, plans ...int64) error {
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		id, err := tx.AddAction(ctx, a.row())
		if err != nil {
			return err
		}
		a.ID = id
		for _, pl := range plans {
			if pl != 0 {
				if err := tx.TakePlan(ctx, pl, id); err != nil {
					return err
				}
			}
		}
		if msg == "" {
			return nil
		}
		return appendAudit(ctx, tx, a, e.cfg.Now(), msg)
	})
}

// journal rewrites a and audits msg in one transaction; plans that a
// renewal answers are marked taken by it.
func (e *Engine) journal(ctx context.Context, a *Action, msg string, plans ...int64) error {
	return e.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutAction(ctx, a.row()); err != nil {
			return err
		}
		for _, pl := range plans {
			if pl != 0 {
				if err := tx.TakePlan(ctx, pl, a.ID); err != nil {
					return err
				}
			}
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
	_, err := tx.AppendAudit(ctx, auditEntry(a, now, msg))
	return err
}

// auditEntry is the audit entry of an action's step; batches collect them
// and chain them in one pass (state.Tx.AppendAudits).
func auditEntry(a *Action, now time.Time, msg string) audit.Entry {
	data, _ := json.Marshal(map[string]any{"id": a.ID, "incident": a.Incident, "kind": a.Kind, "target": a.Target,
		"status": a.Status, "expires": a.Expires, "reason": a.Reason})
	return audit.Entry{Time: now, Kind: audit.KindAction, Subject: fmt.Sprintf("action:%d", a.ID),
		Message: fmt.Sprintf("%s %s (incident %d): %s — %s", a.Kind, a.Target, a.Incident, msg, a.Reason), Data: data}
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
