package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ActionRow is one entry of the action journal. The state package stores
// it; actions/ gives the statuses their meaning.
type ActionRow struct {
	ID       int64
	Incident int64
	Kind     string
	Target   string
	Reason   string
	Status   string
	Created  time.Time
	Applied  time.Time // zero until applied
	Expires  time.Time // zero for actions with nothing to undo (a kill)
	Ended    time.Time // zero while in force or pending
	Snapshot []byte    // executor's undo data (JSON), taken before apply
	Note     string    // last outcome, for operators
}

// actionCols are the columns scanAction reads, in its order.
const actionCols = `id, incident, kind, target, reason, status, created, applied, expires, ended, snapshot, note`

// statusIn returns "status IN (?,…)" for statuses (at least one) and its
// arguments; the journal, feedback and proposal lists filter with it.
func statusIn(statuses []string) (string, []any) {
	args := make([]any, len(statuses))
	for i, st := range statuses {
		args[i] = st
	}
	return `status IN (?` + strings.Repeat(",?", len(statuses)-1) + `)`, args
}

// AddAction journals a new action and returns its id.
func (t *Tx) AddAction(ctx context.Context, a ActionRow) (int64, error) {
	res, err := t.exec(ctx, `INSERT INTO actions(incident, kind, target, reason, status, created, applied, expires, ended, snapshot, note)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		a.Incident, a.Kind, a.Target, a.Reason, a.Status, tsz(a.Created), tsz(a.Applied), tsz(a.Expires), tsz(a.Ended), string(a.Snapshot), a.Note)
	if err != nil {
		return 0, fmt.Errorf("state: add action: %w", err)
	}
	return res.LastInsertId()
}

// PutAction rewrites an existing journal entry.
func (t *Tx) PutAction(ctx context.Context, a ActionRow) error {
	res, err := t.exec(ctx, `UPDATE actions SET incident=?, kind=?, target=?, reason=?, status=?, created=?, applied=?, expires=?, ended=?, snapshot=?, note=?
		WHERE id=?`,
		a.Incident, a.Kind, a.Target, a.Reason, a.Status, tsz(a.Created), tsz(a.Applied), tsz(a.Expires), tsz(a.Ended), string(a.Snapshot), a.Note, a.ID)
	if err != nil {
		return fmt.Errorf("state: put action %d: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: put action %d: %w", a.ID, ErrNotFound)
	}
	return nil
}

// ActionFilter selects journal entries.
type ActionFilter struct {
	Statuses []string // any of these; empty means all
	Since    time.Time
	Limit    int
}

// Actions lists journal entries, oldest first.
func (s *Store) Actions(ctx context.Context, f ActionFilter) ([]ActionRow, error) {
	q := `SELECT ` + actionCols + ` FROM actions WHERE 1=1`
	var args []any
	if len(f.Statuses) > 0 {
		in, sargs := statusIn(f.Statuses)
		q += ` AND ` + in
		args = append(args, sargs...)
	}
	if !f.Since.IsZero() {
		q += ` AND created >= ?`
		args = append(args, ts(f.Since))
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q = `SELECT * FROM (` + q + ` DESC LIMIT ?) ORDER BY id`
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list actions: %w", err)
	}
	return scanActions(rows, nil)
}

// scanActions reads and closes rows of actionCols, keeping those keep
// accepts (all when nil).
func scanActions(rows *sql.Rows, keep func(ActionRow) bool) ([]ActionRow, error) {
	defer rows.Close()
	var out []ActionRow
	for rows.Next() {
		a, err := scanAction(rows)
		if err != nil {
			return nil, err
		}
		if keep == nil || keep(a) {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}

// Action returns one journal entry.
func (s *Store) Action(ctx context.Context, id int64) (ActionRow, error) {
	a, err := scanAction(s.db.QueryRowContext(ctx, `SELECT `+actionCols+` FROM actions WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("state: action %d: %w", id, ErrNotFound)
	}
	return a, err
}

// Action reads one journal entry inside the transaction (the store has a
// single connection: reading through the Store here would wait forever).
func (t *Tx) Action(ctx context.Context, id int64) (ActionRow, error) {
	a, err := scanAction(t.tx.QueryRowContext(ctx, `SELECT `+actionCols+` FROM actions WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("state: action %d: %w", id, ErrNotFound)
	}
	return a, err
}

func scanAction(sc scanner) (ActionRow, error) {
	var a ActionRow
	var created, applied, expires, ended, snap string
	if err := sc.Scan(&a.ID, &a.Incident, &a.Kind, &a.Target, &a.Reason, &a.Status, &created, &applied, &expires, &ended, &snap, &a.Note); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, err
		}
		return a, fmt.Errorf("state: scan action: %w", err)
	}
	a.Created, a.Applied, a.Expires, a.Ended = parseTSZ(created), parseTSZ(applied), parseTSZ(expires), parseTSZ(ended)
	if snap != "" {
		a.Snapshot = []byte(snap)
	}
	return a, nil
}

// tsz stores a zero time as "" so "not yet" is not a date in 0001.
func tsz(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ts(t)
}

func parseTSZ(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
