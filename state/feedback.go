package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FeedbackRow is one operator verdict. The state package stores it;
// agent/feedback gives verdicts and statuses their meaning.
type FeedbackRow struct {
	ID       int64
	Created  time.Time
	Verdict  string
	Incident int64  // 0 when the verdict is about an action or an entity
	Action   int64  // 0 unless given as action:N
	Entity   string // kind:value, for "missed"
	From, To time.Time
	Note     string
	Who      string
	Status   string // pending until the agent (or the CLI) applied it
	Result   []byte // JSON: what it changed
	AuditSeq int64  // the audit entry that recorded the verdict
}

// AddFeedback stores a verdict and returns its id.
func (t *Tx) AddFeedback(ctx context.Context, f FeedbackRow) (int64, error) {
	res, err := t.exec(ctx, `INSERT INTO feedback(created, verdict, incident, action, entity, from_time, to_time, note, who, status, result, audit_seq)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		tsz(f.Created), f.Verdict, f.Incident, f.Action, f.Entity, tsz(f.From), tsz(f.To), f.Note, f.Who, f.Status, string(f.Result), f.AuditSeq)
	if err != nil {
		return 0, fmt.Errorf("state: add feedback: %w", err)
	}
	return res.LastInsertId()
}

// PutFeedback rewrites a verdict (its status, result and audit entry).
func (t *Tx) PutFeedback(ctx context.Context, f FeedbackRow) error {
	res, err := t.exec(ctx, `UPDATE feedback SET status=?, result=?, audit_seq=? WHERE id=?`, f.Status, string(f.Result), f.AuditSeq, f.ID)
	if err != nil {
		return fmt.Errorf("state: put feedback %d: %w", f.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: put feedback %d: %w", f.ID, ErrNotFound)
	}
	return nil
}

const feedbackCols = `id, created, verdict, incident, action, entity, from_time, to_time, note, who, status, result, audit_seq`

func scanFeedback(sc scanner) (FeedbackRow, error) {
	var f FeedbackRow
	var created, from, to, result string
	err := sc.Scan(&f.ID, &created, &f.Verdict, &f.Incident, &f.Action, &f.Entity, &from, &to, &f.Note, &f.Who, &f.Status, &result, &f.AuditSeq)
	if err != nil {
		return f, err
	}
	f.Created, f.From, f.To = parseTSZ(created), parseTSZ(from), parseTSZ(to)
	if result != "" {
		f.Result = []byte(result)
	}
	return f, nil
}

// Feedback returns one verdict.
func (s *Store) Feedback(ctx context.Context, id int64) (FeedbackRow, error) {
	f, err := scanFeedback(s.db.QueryRowContext(ctx, `SELECT `+feedbackCols+` FROM feedback WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("state: feedback %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return f, fmt.Errorf("state: feedback %d: %w", id, err)
	}
	return f, nil
}

// FeedbackList lists verdicts, oldest first; statuses filter when given.
func (s *Store) FeedbackList(ctx context.Context, statuses ...string) ([]FeedbackRow, error) {
	q := `SELECT ` + feedbackCols + ` FROM feedback`
	var args []any
	if len(statuses) > 0 {
		var in string
		in, args = statusIn(statuses)
		q += ` WHERE ` + in
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list feedback: %w", err)
	}
	defer rows.Close()
	var out []FeedbackRow
	for rows.Next() {
		f, err := scanFeedback(rows)
		if err != nil {
			return nil, fmt.Errorf("state: read feedback: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// SuppressionRow is a local, temporary change of detection caused by a
// verdict: a suppression of one rule for one entity, or a damper of a
// whole rule. Ended is zero while it holds.
type SuppressionRow struct {
	ID        int64
	Kind      string
	Rule      string
	Entity    string
	Feedback  int64
	Created   time.Time
	Expires   time.Time
	Ended     time.Time
	EndReason string
}

// AddSuppression stores a suppression and returns its id.
func (t *Tx) AddSuppression(ctx context.Context, r SuppressionRow) (int64, error) {
	res, err := t.exec(ctx, `INSERT INTO suppressions(kind, rule, entity, feedback, created, expires, ended, end_reason) VALUES (?,?,?,?,?,?,?,?)`,
		r.Kind, r.Rule, r.Entity, r.Feedback, tsz(r.Created), tsz(r.Expires), tsz(r.Ended), r.EndReason)
	if err != nil {
		return 0, fmt.Errorf("state: add suppression: %w", err)
	}
	return res.LastInsertId()
}

// EndSuppression ends a suppression that still holds; it reports whether
// one did.
func (t *Tx) EndSuppression(ctx context.Context, id int64, at time.Time, why string) (bool, error) {
	res, err := t.exec(ctx, `UPDATE suppressions SET ended=?, end_reason=? WHERE id=? AND ended=''`, tsz(at), why, id)
	if err != nil {
		return false, fmt.Errorf("state: end suppression %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Suppressions lists suppressions, oldest first: only those that still
// hold when active is set.
func (s *Store) Suppressions(ctx context.Context, active bool) ([]SuppressionRow, error) {
	return querySuppressions(ctx, s.db, active)
}

// Suppressions reads suppressions inside the transaction.
func (t *Tx) Suppressions(ctx context.Context, active bool) ([]SuppressionRow, error) {
	return querySuppressions(ctx, t.tx, active)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func querySuppressions(ctx context.Context, db querier, active bool) ([]SuppressionRow, error) {
	q := `SELECT id, kind, rule, entity, feedback, created, expires, ended, end_reason FROM suppressions`
	if active {
		q += ` WHERE ended = ''`
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("state: list suppressions: %w", err)
	}
	defer rows.Close()
	var out []SuppressionRow
	for rows.Next() {
		var r SuppressionRow
		var c, x, e string
		if err := rows.Scan(&r.ID, &r.Kind, &r.Rule, &r.Entity, &r.Feedback, &c, &x, &e, &r.EndReason); err != nil {
			return nil, fmt.Errorf("state: read suppression: %w", err)
		}
		r.Created, r.Expires, r.Ended = parseTSZ(c), parseTSZ(x), parseTSZ(e)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ProposalRow is a whitelist proposal. Doc is the proposal package's JSON
// (the change, the evidence); Commit is set once the branch is built.
type ProposalRow struct {
	ID       int64
	Pattern  string // dedup key, e.g. "ip:198.18.0.7"
	Feedback int64
	Branch   string
	Status   string
	Doc      []byte
	Commit   string
	Created  time.Time
	Updated  time.Time
	Expires  time.Time
	Note     string
}

// ErrDuplicate is returned when a live proposal for the same pattern exists.
var ErrDuplicate = errors.New("state: duplicate")

// AddProposal stores a proposal; a live one (queued or open) for the same
// pattern makes it fail with ErrDuplicate.
func (t *Tx) AddProposal(ctx context.Context, p ProposalRow) (int64, error) {
	res, err := t.exec(ctx, `INSERT INTO proposals(pattern, feedback, branch, status, doc, commit_hash, created, updated, expires, note)
		VALUES (?,?,?,?,?,?,?,?,?,?)`, p.Pattern, p.Feedback, p.Branch, p.Status, string(p.Doc), p.Commit, tsz(p.Created), tsz(p.Updated), tsz(p.Expires), p.Note)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return 0, fmt.Errorf("state: proposal for %s: %w", p.Pattern, ErrDuplicate)
		}
		return 0, fmt.Errorf("state: add proposal: %w", err)
	}
	return res.LastInsertId()
}

// PutProposal rewrites a proposal's branch, status, document, commit,
// expiry and note.
func (t *Tx) PutProposal(ctx context.Context, p ProposalRow) error {
	res, err := t.exec(ctx, `UPDATE proposals SET branch=?, status=?, doc=?, commit_hash=?, updated=?, expires=?, note=? WHERE id=?`,
		p.Branch, p.Status, string(p.Doc), p.Commit, tsz(p.Updated), tsz(p.Expires), p.Note, p.ID)
	if err != nil {
		return fmt.Errorf("state: put proposal %d: %w", p.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("state: put proposal %d: %w", p.ID, ErrNotFound)
	}
	return nil
}

// Proposals lists proposals, oldest first; statuses filter when given.
func (s *Store) Proposals(ctx context.Context, statuses ...string) ([]ProposalRow, error) {
	return queryProposals(ctx, s.db, statuses)
}

// Proposals reads proposals inside the transaction.
func (t *Tx) Proposals(ctx context.Context, statuses ...string) ([]ProposalRow, error) {
	return queryProposals(ctx, t.tx, statuses)
}

func queryProposals(ctx context.Context, db querier, statuses []string) ([]ProposalRow, error) {
	q := `SELECT id, pattern, feedback, branch, status, doc, commit_hash, created, updated, expires, note FROM proposals`
	var args []any
	if len(statuses) > 0 {
		var in string
		in, args = statusIn(statuses)
		q += ` WHERE ` + in
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("state: list proposals: %w", err)
	}
	defer rows.Close()
	var out []ProposalRow
	for rows.Next() {
		var p ProposalRow
		var doc, c, u, x string
		if err := rows.Scan(&p.ID, &p.Pattern, &p.Feedback, &p.Branch, &p.Status, &doc, &p.Commit, &c, &u, &x, &p.Note); err != nil {
			return nil, fmt.Errorf("state: read proposal: %w", err)
		}
		p.Doc = []byte(doc)
		p.Created, p.Updated, p.Expires = parseTSZ(c), parseTSZ(u), parseTSZ(x)
		out = append(out, p)
	}
	return out, rows.Err()
}

// CaseRow is a labelled example kept for later tuning: what the operator
// said about a stretch of activity, with its events (Doc, JSON).
type CaseRow struct {
	ID       int64
	Feedback int64
	Label    string
	Created  time.Time
	Doc      []byte
}

// AddCase stores a labelled case.
func (t *Tx) AddCase(ctx context.Context, c CaseRow) (int64, error) {
	res, err := t.exec(ctx, `INSERT INTO cases(feedback, label, created, doc) VALUES (?,?,?,?)`, c.Feedback, c.Label, tsz(c.Created), string(c.Doc))
	if err != nil {
		return 0, fmt.Errorf("state: add case: %w", err)
	}
	return res.LastInsertId()
}

// Cases lists labelled cases, oldest first.
func (s *Store) Cases(ctx context.Context) ([]CaseRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, feedback, label, created, doc FROM cases ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("state: list cases: %w", err)
	}
	defer rows.Close()
	var out []CaseRow
	for rows.Next() {
		var c CaseRow
		var created, doc string
		if err := rows.Scan(&c.ID, &c.Feedback, &c.Label, &created, &doc); err != nil {
			return nil, fmt.Errorf("state: read case: %w", err)
		}
		c.Created, c.Doc = parseTSZ(created), []byte(doc)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Untrust records baseline keys that must no longer count as normal.
func (t *Tx) Untrust(ctx context.Context, feedback int64, at time.Time, keys ...string) error {
	for _, k := range keys {
		if _, err := t.exec(ctx, `INSERT OR IGNORE INTO untrusted_keys(key, feedback, created) VALUES (?,?,?)`, k, feedback, tsz(at)); err != nil {
			return fmt.Errorf("state: untrust %s: %w", k, err)
		}
	}
	return nil
}

// UntrustedKeys lists the baseline keys marked untrusted.
func (s *Store) UntrustedKeys(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key FROM untrusted_keys ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("state: list untrusted keys: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("state: read untrusted key: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Incident reads one incident inside the transaction.
func (t *Tx) Incident(ctx context.Context, id int64) (IncidentRow, error) {
	r, err := scanIncident(t.tx.QueryRowContext(ctx, `SELECT id, opened, updated, status, level, score, summary, doc FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("state: incident %d: %w", id, ErrNotFound)
	}
	return r, err
}
