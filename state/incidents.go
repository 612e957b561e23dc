package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IncidentRow is an incident as stored: indexed columns plus the full
// document (the correlator's JSON), which the state package does not
// interpret.
type IncidentRow struct {
	ID      int64
	Opened  time.Time
	Updated time.Time
	Status  string
	Level   string
	Score   float64
	Summary string
	Doc     []byte
}

// PlanRow is a recorded action plan.
type PlanRow struct {
	ID       int64
	Incident int64
	Time     time.Time
	Action   string
	Target   string
	TTL      time.Duration
	Level    string
	Status   string
	Reason   string
	// Taken is 0 while the plan waits for the action engine, the id of
	// its journal entry once taken, -1 when it lapsed or was never meant
	// to act (suppressed, refused at planning).
	Taken int64
}

// ErrNotFound is returned for an unknown incident.
var ErrNotFound = errors.New("state: not found")

// PutIncident inserts or replaces an incident.
func (t *Tx) PutIncident(ctx context.Context, r IncidentRow) error {
	_, err := t.exec(ctx, `INSERT INTO incidents(id, opened, updated, status, level, score, summary, doc) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET opened=excluded.opened, updated=excluded.updated, status=excluded.status, level=excluded.level,
		score=excluded.score, summary=excluded.summary, doc=excluded.doc`,
		r.ID, ts(r.Opened), ts(r.Updated), r.Status, r.Level, r.Score, r.Summary, string(r.Doc))
	if err != nil {
		return fmt.Errorf("state: put incident %d: %w", r.ID, err)
	}
	return nil
}

// AppendIncident writes an incident of which only the newest signals are
// in r.Doc (a summarised incident, see correlate.Incident.Summarised): the
// row and the document's other fields take r's values, the document's
// signals are the stored ones followed by r.Doc's. Without a stored row
// it inserts r as it is.
//
// The documents are the agent's own encoding of an incident (signals the
// last array field, then only "capped"), so the two are spliced as text:
// a flood summarises tens of thousands of incidents, and parsing each
// stored story again (SQLite's JSON functions) would cost more than the
// rest of the ingest. A document of another shape is merged as JSON.
func (t *Tx) AppendIncident(ctx context.Context, r IncidentRow) error {
	if done, err := t.updateHead(ctx, r); done || err != nil {
		return err
	}
	var old string
	err := t.tx.QueryRowContext(ctx, `SELECT doc FROM incidents WHERE id = ?`, r.ID).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) {
		return t.PutIncident(ctx, r)
	}
	if err != nil {
		return fmt.Errorf("state: append to incident %d: %w", r.ID, err)
	}
	if doc, ok := spliceSignals(old, string(r.Doc)); ok {
		r.Doc = []byte(doc)
		return t.PutIncident(ctx, r)
	}
	_, err = t.exec(ctx, `UPDATE incidents SET opened=?, updated=?, status=?, level=?, score=?, summary=?,
		doc=json_set(?, '$.signals', json((SELECT json_group_array(json(value)) FROM (
			SELECT 0 AS part, key, value FROM json_each(doc, '$.signals') WHERE json_type(doc, '$.signals') = 'array'
			UNION ALL SELECT 1, key, value FROM json_each(?, '$.signals') WHERE json_type(?, '$.signals') = 'array'
			ORDER BY part, key)))) WHERE id = ?`,
		ts(r.Opened), ts(r.Updated), r.Status, r.Level, r.Score, r.Summary, string(r.Doc), string(r.Doc), string(r.Doc), r.ID)
	if err != nil {
		return fmt.Errorf("state: append to incident %d: %w", r.ID, err)
	}
	return nil
}

// updateHead handles the commonest write of a summarised incident, a new
// status (contained, closed) with no new signal, without reading the
// stored story: the fields before "signals" are replaced, the stored
// signals and what follows them are kept, in SQL. It reports false when
// r brings signals or either document has another shape.
func (t *Tx) updateHead(ctx context.Context, r IncidentRow) (bool, error) {
	const key = `,"signals":`
	doc := string(r.Doc)
	i := strings.Index(doc, key)
	if i < 0 || !strings.HasPrefix(doc[i+len(key):], "null") {
		return false, nil
	}
	res, err := t.exec(ctx, `UPDATE incidents SET opened=?, updated=?, status=?, level=?, score=?, summary=?,
		doc = ? || substr(doc, instr(doc, ?)) WHERE id = ? AND instr(doc, ?) > 0`,
		ts(r.Opened), ts(r.Updated), r.Status, r.Level, r.Score, r.Summary, doc[:i], key, r.ID, key)
	if err != nil {
		return false, fmt.Errorf("state: update incident %d: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	return err == nil && n == 1, err
}

// spliceSignals returns doc with old's signals before its own. Both are
// JSON objects whose last fields are "signals" (an array or null) and
// optionally "capped" (a string): the first `,"signals":` is that field
// (every earlier field's strings escape their quotes).
func spliceSignals(old, doc string) (string, bool) {
	const key = `,"signals":`
	oi, ni := strings.Index(old, key), strings.Index(doc, key)
	if oi < 0 || ni < 0 {
		return "", false
	}
	oldArr, _, ok1 := signalArray(old[oi+len(key):])
	newArr, rest, ok2 := signalArray(doc[ni+len(key):])
	if !ok1 || !ok2 {
		return "", false
	}
	sep := ""
	if oldArr != "" && newArr != "" {
		sep = ","
	}
	return doc[:ni] + key + "[" + oldArr + sep + newArr + "]" + rest, true
}

// signalArray splits the text after `"signals":` into the array's
// elements and what follows the array.
func signalArray(s string) (elems, rest string, ok bool) {
	if r, ok := strings.CutPrefix(s, "null"); ok {
		return "", r, true
	}
	if !strings.HasPrefix(s, "[") {
		return "", "", false
	}
	end := len(s) - 2
	if !strings.HasSuffix(s, "]}") {
		if end = strings.LastIndex(s, `],"capped":`); end < 0 {
			return "", "", false
		}
	}
	if end < 1 {
		return "", "", false
	}
	return s[1:end], s[end+1:], true
}

// AddPlan records a plan.
func (t *Tx) AddPlan(ctx context.Context, p PlanRow) (int64, error) {
	taken := p.Taken
	if taken == 0 && p.Status != planPending {
		taken = -1 // only a plan the responder meant to carry out is queued
	}
	res, err := t.exec(ctx, `INSERT INTO plans(incident, time, action, target, ttl_seconds, level, status, reason, taken) VALUES (?,?,?,?,?,?,?,?,?)`,
		p.Incident, ts(p.Time), p.Action, p.Target, int64(p.TTL/time.Second), p.Level, p.Status, p.Reason, taken)
	if err != nil {
		return 0, fmt.Errorf("state: add plan: %w", err)
	}
	return res.LastInsertId()
}

// IncidentFilter selects incidents.
type IncidentFilter struct {
	Status string // "" any; "open" means not closed
	Limit  int
}

// Incidents lists incidents, newest first.
func (s *Store) Incidents(ctx context.Context, f IncidentFilter) ([]IncidentRow, error) {
	q := `SELECT id, opened, updated, status, level, score, summary, doc FROM incidents`
	var args []any
	switch f.Status {
	case "":
	case "open":
		q += ` WHERE status != 'closed'`
	default:
		q += ` WHERE status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list incidents: %w", err)
	}
	defer rows.Close()
	var out []IncidentRow
	for rows.Next() {
		r, err := scanIncident(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Incident reads one incident.
func (s *Store) Incident(ctx context.Context, id int64) (IncidentRow, error) {
	row := s.db.QueryRowContext(ctx, `SELECT id, opened, updated, status, level, score, summary, doc FROM incidents WHERE id = ?`, id)
	r, err := scanIncident(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("incident %d: %w", id, ErrNotFound)
	}
	return r, err
}

// MaxIncidentID returns the highest incident id (0 when none).
func (s *Store) MaxIncidentID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM incidents`).Scan(&id); err != nil {
		return 0, fmt.Errorf("state: max incident: %w", err)
	}
	return id.Int64, nil
}

// Plans lists the plans of an incident (0: all), oldest first.
func (s *Store) Plans(ctx context.Context, incident int64) ([]PlanRow, error) {
	q := `SELECT ` + planCols + ` FROM plans`
	var args []any
	if incident != 0 {
		q += ` WHERE incident = ?`
		args = append(args, incident)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list plans: %w", err)
	}
	defer rows.Close()
	return scanPlans(rows)
}

type scanner interface{ Scan(...any) error }

func scanIncident(sc scanner) (IncidentRow, error) {
	var r IncidentRow
	var o, u, doc string
	if err := sc.Scan(&r.ID, &o, &u, &r.Status, &r.Level, &r.Score, &r.Summary, &doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return r, err
		}
		return r, fmt.Errorf("state: read incident: %w", err)
	}
	r.Opened, _ = time.Parse(time.RFC3339Nano, o)
	r.Updated, _ = time.Parse(time.RFC3339Nano, u)
	r.Doc = []byte(doc)
	return r, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
