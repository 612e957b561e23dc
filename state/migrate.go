package state

import (
	"context"
	"fmt"
)

// migrations are forward-only: version N is migrations[N-1]. Never edit one
// that has shipped; add a new one.
var migrations = []string{
	// 1: audit chain, key/value metadata, log positions.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE audit (
		seq INTEGER PRIMARY KEY,
		time TEXT NOT NULL,
		kind TEXT NOT NULL,
		subject TEXT NOT NULL DEFAULT '',
		message TEXT NOT NULL,
		data TEXT NOT NULL DEFAULT '',
		prev TEXT NOT NULL,
		hash TEXT NOT NULL
	);
	CREATE INDEX audit_kind ON audit(kind);
	CREATE TABLE offsets (source TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL);`,
	// 2: incidents and the plans the responder recorded for them.
	`CREATE TABLE incidents (
		id INTEGER PRIMARY KEY,
		opened TEXT NOT NULL,
		updated TEXT NOT NULL,
		status TEXT NOT NULL,
		level TEXT NOT NULL,
		score REAL NOT NULL,
		summary TEXT NOT NULL,
		doc TEXT NOT NULL
	);
	CREATE INDEX incidents_status ON incidents(status);
	CREATE TABLE plans (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		incident INTEGER NOT NULL REFERENCES incidents(id),
		time TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		ttl_seconds INTEGER NOT NULL,
		level TEXT NOT NULL,
		status TEXT NOT NULL,
		reason TEXT NOT NULL
	);
	CREATE INDEX plans_incident ON plans(incident);`,
	// 3: git sync: signature verification cache, signed audit checkpoints,
	// and the outbox of items for the host branch that are not audit
	// entries (audit entries are exported from the audit table by a
	// cursor, so they are never stored twice).
	`CREATE TABLE verified (
		commit_hash TEXT NOT NULL,
		trust_hash TEXT NOT NULL,
		signer TEXT NOT NULL,
		PRIMARY KEY (commit_hash, trust_hash)
	);
	CREATE TABLE checkpoints (seq INTEGER PRIMARY KEY, data TEXT NOT NULL, created TEXT NOT NULL);
	CREATE TABLE outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		kind TEXT NOT NULL,
		payload TEXT NOT NULL,
		created TEXT NOT NULL
	);`,
	// 4: file integrity: the last known state of every watched file.
	`CREATE TABLE files (
		path TEXT PRIMARY KEY,
		size INTEGER NOT NULL,
		mtime_ns INTEGER NOT NULL,
		ctime_ns INTEGER NOT NULL,
		inode INTEGER NOT NULL,
		dev INTEGER NOT NULL,
		mode INTEGER NOT NULL,
		uid INTEGER NOT NULL,
		gid INTEGER NOT NULL,
		sha256 TEXT NOT NULL,
		seen TEXT NOT NULL
	);`,
	// 5: the action journal: every action the engine planned, what it
	// applied, the snapshot to undo it, and its expiry. The reconciler
	// repairs the host from it after a crash.
	`CREATE TABLE actions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		incident INTEGER NOT NULL,
		kind TEXT NOT NULL,
		target TEXT NOT NULL,
		reason TEXT NOT NULL,
		status TEXT NOT NULL,
		created TEXT NOT NULL,
		applied TEXT NOT NULL,
		expires TEXT NOT NULL,
		ended TEXT NOT NULL,
		snapshot TEXT NOT NULL,
		note TEXT NOT NULL
	);
	CREATE INDEX actions_status ON actions(status);`,
	// 6: the feedback loop: operator verdicts, the local suppressions and
	// dampers they cause, labelled cases, baseline keys no longer trusted,
	// and whitelist proposals (the proposals table is their outbox: a
	// queued proposal is pushed by the syncer once the remote answers).
	`CREATE TABLE feedback (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		created TEXT NOT NULL,
		verdict TEXT NOT NULL,
		incident INTEGER NOT NULL,
		action INTEGER NOT NULL,
		entity TEXT NOT NULL,
		from_time TEXT NOT NULL,
		to_time TEXT NOT NULL,
		note TEXT NOT NULL,
		who TEXT NOT NULL,
		status TEXT NOT NULL,
		result TEXT NOT NULL,
		audit_seq INTEGER NOT NULL
	);
	CREATE INDEX feedback_status ON feedback(status);
	CREATE TABLE suppressions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		kind TEXT NOT NULL,
		rule TEXT NOT NULL,
		entity TEXT NOT NULL,
		feedback INTEGER NOT NULL,
		created TEXT NOT NULL,
		expires TEXT NOT NULL,
		ended TEXT NOT NULL,
		end_reason TEXT NOT NULL
	);
	CREATE INDEX suppressions_ended ON suppressions(ended);
	CREATE TABLE proposals (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		pattern TEXT NOT NULL,
		feedback INTEGER NOT NULL,
		branch TEXT NOT NULL,
		status TEXT NOT NULL,
		doc TEXT NOT NULL,
		commit_hash TEXT NOT NULL,
		created TEXT NOT NULL,
		updated TEXT NOT NULL,
		expires TEXT NOT NULL,
		note TEXT NOT NULL
	);
	CREATE UNIQUE INDEX proposals_live ON proposals(pattern) WHERE status IN ('queued', 'open');
	CREATE TABLE cases (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		feedback INTEGER NOT NULL,
		label TEXT NOT NULL,
		created TEXT NOT NULL,
		doc TEXT NOT NULL
	);
	CREATE TABLE untrusted_keys (
		key TEXT PRIMARY KEY,
		feedback INTEGER NOT NULL,
		created TEXT NOT NULL
	);`,
	// 7: the plans table is the action engine's queue: taken is 0 while a
	// committed plan waits for the engine, the journal entry's id once the
	// engine took it, -1 when it lapsed before it could be carried out.
	// Plans of earlier versions that already have a journal entry are
	// marked taken; the others (dropped by the old in-memory queue) become
	// pending, and lapse if their TTL has passed. The journal gets the
	// indexes its bursts need: renewals look actions up by kind and
	// target, expiry by time.
	`ALTER TABLE plans ADD COLUMN taken INTEGER NOT NULL DEFAULT 0;
	UPDATE plans SET taken = COALESCE((SELECT MAX(a.id) FROM actions a
		WHERE a.incident = plans.incident AND a.kind = plans.action AND a.target = plans.target), 0);
	UPDATE plans SET taken = -1 WHERE status != 'planned' AND taken = 0;
	CREATE INDEX plans_pending ON plans(id) WHERE taken = 0;
	CREATE INDEX actions_kind_target ON actions(kind, target);
	CREATE INDEX actions_expires ON actions(expires) WHERE status = 'applied';
	CREATE INDEX actions_applied ON actions(applied);`,
}

// Version returns the schema version of the database (0 when empty).
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("state: read version: %w", err)
	}
	return v, nil
}

// migrate applies migrations up to target, each in its own transaction
// together with its version bump, so a crash between two leaves a database
// at a well-defined version.
func (s *Store) migrate(ctx context.Context, target int) error {
	v, err := s.Version(ctx)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("state: database version %d is newer than this binary understands (%d); refusing to touch it", v, len(migrations))
	}
	for ; v < target; v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("state: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("state: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("state: migrate to %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("state: migrate to %d: %w", v+1, err)
		}
	}
	return nil
}
