// Package state is the agent's durable memory: one SQLite database
// (modernc.org/sqlite, pure Go) in the state directory, opened in WAL mode
// with a busy timeout, upgraded by forward-only numbered migrations. The
// agent's pipeline writes incidents, plans, audit entries and log offsets in
// one transaction per batch, so a crash leaves either the whole batch or
// none of it; the CLI reads the same file while the agent runs.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside the state directory.
const FileName = "picket.db"

// ErrNotInitialized is returned when a read-only open finds no database:
// the agent has never run with this state directory.
var ErrNotInitialized = errors.New("state: no database (has the agent run with this --state-dir?)")

// Store is an open state database.
type Store struct {
	db   *sql.DB
	path string
	ro   bool
}

// Open opens (creating if needed) the database in dir, which is created 0700;
// the file is 0600. Migrations run to the latest version.
func Open(ctx context.Context, dir string) (*Store, error) {
	return openAt(ctx, dir, len(migrations))
}

func openAt(ctx context.Context, dir string, version int) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	// Create the file ourselves so it is 0600 from its first byte; SQLite
	// would use the umask.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("state: chmod %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// One writer connection: SQLite serialises writers anyway, and one
	// connection makes "BEGIN IMMEDIATE" semantics simple.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx, version); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens an existing database for reading (status, incidents,
// audit): no migration, no write, works for a non-root user who can read
// the state directory.
func OpenReadOnly(ctx context.Context, dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotInitialized, path)
		}
		return nil, fmt.Errorf("state: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, ro: true}
	v, err := s.Version(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if v > len(migrations) {
		db.Close()
		return nil, fmt.Errorf("state: database version %d is newer than this binary understands (%d)", v, len(migrations))
	}
	return s, nil
}

func dsn(path string, ro bool) string {
	q := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
	if ro {
		return q + "&mode=ro"
	}
	// synchronous(FULL): an audit entry acknowledged is on disk.
	return q + "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Tx is a write transaction.
type Tx struct {
	tx *sql.Tx
	// stmts caches the transaction's prepared statements: a burst writes
	// thousands of rows in one transaction, and parsing the same SQL again
	// for each row cost more than the write.
	stmts map[string]*sql.Stmt
}

// exec runs q through the transaction's prepared statement for it.
func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st := t.stmts[q]
	if st == nil {
		var err error
		if st, err = t.tx.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		if t.stmts == nil {
			t.stmts = map[string]*sql.Stmt{}
		}
		t.stmts[q] = st
	}
	return st.ExecContext(ctx, args...)
}

// Update runs fn in one transaction: all of it is committed or none.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if s.ro {
		return errors.New("state: database opened read-only")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: begin: %w", err)
	}
	if err := fn(&Tx{tx: tx}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: commit: %w", err)
	}
	return nil
}

// DB exposes the handle to tests in this package's callers that must
// tamper with rows (audit verification tests). Not for production use.
func (s *Store) DB() *sql.DB { return s.db }
