package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SetMeta stores a key/value pair.
func (t *Tx) SetMeta(ctx context.Context, key, value string) error {
	if _, err := t.exec(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("state: set %s: %w", key, err)
	}
	return nil
}

// Meta reads a key; ok is false when it is absent.
func (s *Store) Meta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("state: get %s: %w", key, err)
	}
	return v, true, nil
}

// SetMetaJSON stores v as JSON under key.
func (t *Tx) SetMetaJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encode %s: %w", key, err)
	}
	return t.SetMeta(ctx, key, string(b))
}

// MetaJSON decodes the JSON stored under key into v; ok is false if absent.
func (s *Store) MetaJSON(ctx context.Context, key string, v any) (bool, error) {
	raw, ok, err := s.Meta(ctx, key)
	if err != nil || !ok {
		return ok, err
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return true, fmt.Errorf("state: decode %s: %w", key, err)
	}
	return true, nil
}

// SetOffset records a log source's read position (a tail position or a
// journald cursor, JSON-encoded by the caller's type).
func (t *Tx) SetOffset(ctx context.Context, source string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: encode offset %s: %w", source, err)
	}
	if _, err := t.exec(ctx, `INSERT INTO offsets(source, value, updated) VALUES (?, ?, ?) ON CONFLICT(source) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
		source, string(b), time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("state: set offset %s: %w", source, err)
	}
	return nil
}

// Offset decodes a source's saved position into v; ok is false if none.
func (s *Store) Offset(ctx context.Context, source string, v any) (bool, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM offsets WHERE source = ?`, source).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: offset %s: %w", source, err)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return true, fmt.Errorf("state: decode offset %s: %w", source, err)
	}
	return true, nil
}
