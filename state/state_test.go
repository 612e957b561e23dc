package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/picket-agent/picket/audit"
)

func appendN(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.AppendAudit(ctx, audit.Entry{Time: time.Unix(int64(1000+i), 5), Kind: audit.KindIncident,
				Subject: "incident:1", Message: "entry", Data: []byte(`{"n":1}`)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var busy int
	if err := s.db.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
		t.Errorf("busy_timeout = %d (%v), want 5000", busy, err)
	}
}

// TestMigrateFromEachVersion opens a database left at every earlier version
// (with data in it) and checks the upgrade keeps the data and reaches the
// latest version.
func TestMigrateFromEachVersion(t *testing.T) {
	ctx := context.Background()
	for v := 0; v <= len(migrations); v++ {
		dir := t.TempDir()
		s, err := openAt(ctx, dir, v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if got, _ := s.Version(ctx); got != v {
			t.Fatalf("openAt(%d) left version %d", v, got)
		}
		if v >= 1 {
			appendN(t, s, 3)
		}
		s.Close()
		s, err = Open(ctx, dir)
		if err != nil {
			t.Fatalf("upgrade from %d: %v", v, err)
		}
		if got, _ := s.Version(ctx); got != len(migrations) {
			t.Errorf("upgrade from %d reached %d, want %d", v, got, len(migrations))
		}
		n, err := s.VerifyAudit(ctx)
		if err != nil {
			t.Errorf("upgrade from %d: audit: %v", v, err)
		}
		if v >= 1 && n != 3 {
			t.Errorf("upgrade from %d: %d audit entries survived, want 3", v, n)
		}
		// The newest tables work.
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.PutIncident(ctx, IncidentRow{ID: 1, Opened: time.Now(), Updated: time.Now(), Status: "open", Level: "contain", Score: 50, Summary: "s", Doc: []byte("{}")})
		}); err != nil {
			t.Errorf("upgrade from %d: %v", v, err)
		}
		s.Close()
	}
}

func TestRefusesNewerDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dir); err == nil {
		t.Fatal("opening a database from a newer binary succeeded")
	}
	if _, err := OpenReadOnly(ctx, dir); err == nil {
		t.Fatal("read-only open of a newer database succeeded")
	}
}

func TestOpenReadOnlyMissing(t *testing.T) {
	_, err := OpenReadOnly(context.Background(), t.TempDir())
	if !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("err = %v, want ErrNotInitialized", err)
	}
}

// TestFailedTransactionLeavesNothing: an error mid-batch rolls back every
// write of the batch, including audit entries and the recorded head.
func TestFailedTransactionLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 2)
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AppendAudit(ctx, audit.Entry{Time: time.Now(), Kind: "x", Message: "lost"}); err != nil {
			return err
		}
		if err := tx.SetOffset(ctx, "auth:file:/x", map[string]int{"offset": 9}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	n, err := s.VerifyAudit(ctx)
	if err != nil || n != 2 {
		t.Fatalf("after rollback: %d entries, %v; want 2, nil", n, err)
	}
	var off map[string]int
	if ok, _ := s.Offset(ctx, "auth:file:/x", &off); ok {
		t.Fatal("offset of a rolled-back batch was stored")
	}
}

func TestAuditTamperDetected(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		sql     string
		wantSeq int64
	}{
		{"altered message", `UPDATE audit SET message = 'nothing happened' WHERE seq = 3`, 3},
		{"altered time", `UPDATE audit SET time = '2001-01-01T00:00:00Z' WHERE seq = 2`, 2},
		{"removed middle", `DELETE FROM audit WHERE seq = 3`, 4},
		{"removed last", `DELETE FROM audit WHERE seq = 5`, 5},
		{"reordered", `UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 100`, 2},
		{"rehashed but unlinked", `UPDATE audit SET hash = 'ff' WHERE seq = 4`, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			appendN(t, s, 5)
			if n, err := s.VerifyAudit(ctx); err != nil || n != 5 {
				t.Fatalf("intact chain: %d, %v", n, err)
			}
			if _, err := s.db.Exec(c.sql); err != nil {
				t.Fatal(err)
			}
			_, err = s.VerifyAudit(ctx)
			var ce *audit.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("tampering not detected: %v", err)
			}
			if ce.Seq != c.wantSeq {
				t.Errorf("first bad entry %d, want %d (%v)", ce.Seq, c.wantSeq, err)
			}
		})
	}
}

func TestReadOnlyWhileWriterOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	appendN(t, w, 2)
	r, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.AuditCount(ctx); err != nil || n != 2 {
		t.Fatalf("reader sees %d, %v", n, err)
	}
	appendN(t, w, 1)
	if n, err := r.AuditCount(ctx); err != nil || n != 3 {
		t.Fatalf("reader sees %d after a new write, %v", n, err)
	}
	if err := r.Update(ctx, func(*Tx) error { return nil }); err == nil {
		t.Fatal("read-only store accepted a write")
	}
}
