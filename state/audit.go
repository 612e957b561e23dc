package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/picket-agent/picket/audit"
)

const metaAuditHead = "audit_head"

// AppendAudit seals e after the current head and stores it; the head is
// recorded in meta in the same transaction so removal of the newest entries
// is detectable.
func (t *Tx) AppendAudit(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	var seq int64
	var prev string
	err := t.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("state: audit head: %w", err)
	}
	e = audit.Seal(seq, prev, e)
	data := ""
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	if _, err := t.exec(ctx, `INSERT INTO audit(seq, time, kind, subject, message, data, prev, hash) VALUES (?,?,?,?,?,?,?,?)`,
		e.Seq, e.Time.Format(time.RFC3339Nano), e.Kind, e.Subject, e.Message, data, e.Prev, e.Hash); err != nil {
		return e, fmt.Errorf("state: append audit: %w", err)
	}
	if err := t.SetMeta(ctx, metaAuditHead, fmt.Sprintf("%d %s", e.Seq, e.Hash)); err != nil {
		return e, err
	}
	return e, nil
}

// AuditFilter selects entries for listing.
type AuditFilter struct {
	Kind  string
	Since int64 // entries with seq > Since
	Limit int   // 0: all
}

// EachAudit calls fn for entries in seq order; it streams, so verifying a
// long chain needs constant memory.
func (s *Store) EachAudit(ctx context.Context, f AuditFilter, fn func(audit.Entry) error) error {
	q := `SELECT seq, time, kind, subject, message, data, prev, hash FROM audit WHERE seq > ?`
	args := []any{f.Since}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, f.Kind)
	}
	q += ` ORDER BY rowid`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("state: list audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Entry
		var ts, data string
		if err := rows.Scan(&e.Seq, &ts, &e.Kind, &e.Subject, &e.Message, &data, &e.Prev, &e.Hash); err != nil {
			return fmt.Errorf("state: read audit: %w", err)
		}
		if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return &audit.ChainError{Seq: e.Seq, Reason: fmt.Sprintf("unreadable time %q", ts)}
		}
		if data != "" {
			e.Data = []byte(data)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyAudit walks the whole chain in stored order and checks it ends at
// the recorded head. It returns the number of entries verified and a
// *audit.ChainError naming the first bad entry.
func (s *Store) VerifyAudit(ctx context.Context) (int64, error) {
	var v audit.Verifier
	err := s.EachAudit(ctx, AuditFilter{}, v.Next)
	if err != nil {
		return v.Count(), err
	}
	head, ok, err := s.Meta(ctx, metaAuditHead)
	if err != nil {
		return v.Count(), err
	}
	if ok {
		var seq int64
		var hash string
		if _, err := fmt.Sscanf(head, "%d %s", &seq, &hash); err != nil {
			return v.Count(), &audit.ChainError{Seq: 0, Reason: "recorded head unreadable"}
		}
		return v.Count(), v.Head(seq, hash)
	}
	return v.Count(), nil
}

// AuditCount returns the sequence number of the newest entry (0: none).
func (s *Store) AuditCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit`).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count audit: %w", err)
	}
	return n, nil
}
