package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Verified returns the cached signer (JSON, the sync package's type) of a
// commit verified under a trust set, keyed by both so a changed trust set
// re-verifies.
func (s *Store) Verified(ctx context.Context, commit, trustHash string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT signer FROM verified WHERE commit_hash = ? AND trust_hash = ?`, commit, trustHash).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state: verified %s: %w", commit, err)
	}
	return v, true, nil
}

// PutVerified records a verification result.
func (s *Store) PutVerified(ctx context.Context, commit, trustHash, signer string) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO verified(commit_hash, trust_hash, signer) VALUES (?, ?, ?)`, commit, trustHash, signer)
	if err != nil {
		return fmt.Errorf("state: put verified %s: %w", commit, err)
	}
	return nil
}

// AddCheckpoint stores a signed audit checkpoint (JSON) for the chain head
// at seq.
func (t *Tx) AddCheckpoint(ctx context.Context, seq int64, data []byte) error {
	_, err := t.exec(ctx, `INSERT OR REPLACE INTO checkpoints(seq, data, created) VALUES (?, ?, ?)`, seq, string(data), ts(time.Now()))
	if err != nil {
		return fmt.Errorf("state: add checkpoint %d: %w", seq, err)
	}
	return nil
}

// Checkpoints calls fn with every stored checkpoint, oldest first.
func (s *Store) Checkpoints(ctx context.Context, fn func(seq int64, data []byte) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, data FROM checkpoints ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("state: list checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var data string
		if err := rows.Scan(&seq, &data); err != nil {
			return fmt.Errorf("state: read checkpoint: %w", err)
		}
		if err := fn(seq, []byte(data)); err != nil {
			return err
		}
	}
	return rows.Err()
}
