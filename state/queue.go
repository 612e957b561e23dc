package state

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// planPending is the plan status the responder gives a plan it means to
// carry out (respond.StatusPlanned); only those are queued for the engine.
const planPending = "planned"

// planCols are the columns scanPlans reads, in its order.
const planCols = `id, incident, time, action, target, ttl_seconds, level, status, reason, taken`

func scanPlans(rows *sql.Rows) ([]PlanRow, error) {
	defer rows.Close()
	var out []PlanRow
	for rows.Next() {
		var p PlanRow
		var t string
		var ttl int64
		if err := rows.Scan(&p.ID, &p.Incident, &t, &p.Action, &p.Target, &ttl, &p.Level, &p.Status, &p.Reason, &p.Taken); err != nil {
			return nil, fmt.Errorf("state: read plan: %w", err)
		}
		p.Time, _ = time.Parse(time.RFC3339Nano, t)
		p.TTL = time.Duration(ttl) * time.Second
		out = append(out, p)
	}
	return out, rows.Err()
}

// PendingPlans returns up to limit committed plans the action engine has
// not taken yet, oldest first: the plans table is the engine's queue, so a
// burst waits here (durably) instead of overflowing memory, and a crash or
// restart loses nothing.
func (s *Store) PendingPlans(ctx context.Context, limit int) ([]PlanRow, error) {
	if limit <= 0 {
		limit = 1024
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+planCols+` FROM plans WHERE taken = 0 ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("state: pending plans: %w", err)
	}
	return scanPlans(rows)
}

// CountPendingPlans returns how many plans wait for the engine (status).
func (s *Store) CountPendingPlans(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM plans WHERE taken = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count pending plans: %w", err)
	}
	return n, nil
}

// TakePlan marks plan id as carried out by journal entry action (-1: it
// lapsed), in the transaction that journals the action.
func (t *Tx) TakePlan(ctx context.Context, id, action int64) error {
	if _, err := t.exec(ctx, `UPDATE plans SET taken = ? WHERE id = ?`, action, id); err != nil {
		return fmt.Errorf("state: take plan %d: %w", id, err)
	}
	return nil
}

// ActionsFor returns the journal entries of kind for any of targets with
// one of statuses, oldest first (renewals in a burst: one query, not one
// per action).
func (s *Store) ActionsFor(ctx context.Context, kind string, targets []string, statuses []string) ([]ActionRow, error) {
	var out []ActionRow
	// SQLite binds at most 32,766 variables; stay well below.
	const chunk = 500
	for len(targets) > 0 {
		n := min(chunk, len(targets))
		part := targets[:n]
		targets = targets[n:]
		in, args := statusIn(statuses)
		args = append([]any{kind}, args...)
		for _, t := range part {
			args = append(args, t)
		}
		q := `SELECT ` + actionCols + ` FROM actions WHERE kind = ? AND ` + in +
			` AND target IN (?` + strings.Repeat(",?", n-1) + `) ORDER BY id`
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("state: actions for %s: %w", kind, err)
		}
		got, err := scanActions(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("state: actions for %s: %w", kind, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// DueActions returns applied journal entries whose expiry is at or before
// t, oldest first, at most limit (0: all).
func (s *Store) DueActions(ctx context.Context, t time.Time, limit int) ([]ActionRow, error) {
	// Stored times are RFC 3339 with trimmed fractions, so the text order
	// is the time order only to the second: ask for a second more, keep
	// what is really due.
	q := `SELECT ` + actionCols + ` FROM actions WHERE status = 'applied' AND expires != '' AND expires <= ? ORDER BY expires, id`
	args := []any{ts(t.Add(time.Second))}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("state: due actions: %w", err)
	}
	return scanActions(rows, func(a ActionRow) bool { return !a.Expires.After(t) })
}

// CountAppliedSince counts journal entries of kinds (all when empty) that
// were applied to the host at or after t: the hourly caps count what
// reached the host, not what was refused, dropped or failed.
func (s *Store) CountAppliedSince(ctx context.Context, t time.Time, kinds []string) (int, error) {
	q := `SELECT count(*) FROM actions WHERE applied != '' AND applied >= ?`
	args := []any{ts(t)}
	if len(kinds) > 0 {
		q += ` AND kind IN (?` + strings.Repeat(",?", len(kinds)-1) + `)`
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	var n int
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count applied actions: %w", err)
	}
	return n, nil
}
