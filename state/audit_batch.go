package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/picket-agent/picket/audit"
)

// AppendAudits appends entries to the hash chain in order, like one
// AppendAudit each, but reads the chain's head and records the new head
// once for all of them: a batch of a flood's decisions costs one insert
// per entry instead of three statements.
func (t *Tx) AppendAudits(ctx context.Context, es []audit.Entry) error {
	if len(es) == 0 {
		return nil
	}
	var seq int64
	var prev string
	err := t.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("state: audit head: %w", err)
	}
	for _, e := range es {
		e = audit.Seal(seq, prev, e)
		data := ""
		if len(e.Data) > 0 {
			data = string(e.Data)
		}
		if _, err := t.exec(ctx, `INSERT INTO audit(seq, time, kind, subject, message, data, prev, hash) VALUES (?,?,?,?,?,?,?,?)`,
			e.Seq, e.Time.Format(time.RFC3339Nano), e.Kind, e.Subject, e.Message, data, e.Prev, e.Hash); err != nil {
			return fmt.Errorf("state: append audit: %w", err)
		}
		seq, prev = e.Seq, e.Hash
	}
	return t.SetMeta(ctx, metaAuditHead, fmt.Sprintf("%d %s", seq, prev))
}
