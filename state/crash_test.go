package state

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/audit"
)

// TestCrashMidWrite kills a writer process with SIGKILL while it commits
// batches (audit entries, an incident and an offset per transaction) and
// checks the database it leaves: integrity intact, chain intact, and every
// batch either wholly there or wholly absent.
func TestCrashMidWrite(t *testing.T) {
	if dir := os.Getenv("PICKET_CRASH_WRITER"); dir != "" {
		crashWriter(dir)
		return
	}
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidWrite$")
		cmd.Env = append(os.Environ(), "PICKET_CRASH_WRITER="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+100*round) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		ctx := context.Background()
		s, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("round %d: reopen after crash: %v", round, err)
		}
		var ok string
		if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("round %d: integrity_check: %q %v", round, ok, err)
		}
		n, err := s.VerifyAudit(ctx)
		if err != nil {
			t.Fatalf("round %d: audit chain after crash: %v", round, err)
		}
		// Each batch wrote 3 audit entries, 1 incident and the offset
		// naming the batch number.
		var incidents int64
		s.db.QueryRow(`SELECT COUNT(*) FROM incidents`).Scan(&incidents)
		var off struct{ Batch int64 }
		s.Offset(ctx, "crash", &off)
		if n == 0 {
			t.Fatalf("round %d: the writer committed nothing in its time", round)
		}
		if n != incidents*3 || off.Batch != incidents {
			t.Fatalf("round %d: partial batch: %d audit entries, %d incidents, offset batch %d", round, n, incidents, off.Batch)
		}
		s.Close()
	}
}

func crashWriter(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		os.Exit(2)
	}
	var start int64
	s.db.QueryRow(`SELECT COUNT(*) FROM incidents`).Scan(&start)
	for b := start + 1; ; b++ {
		err := s.Update(ctx, func(tx *Tx) error {
			for i := 0; i < 3; i++ {
				if _, err := tx.AppendAudit(ctx, audit.Entry{Time: time.Now(), Kind: audit.KindIncident, Message: "batch " + strconv.FormatInt(b, 10)}); err != nil {
					return err
				}
			}
			if err := tx.PutIncident(ctx, IncidentRow{ID: b, Opened: time.Now(), Updated: time.Now(), Status: "open", Level: "contain", Summary: "x", Doc: []byte("{}")}); err != nil {
				return err
			}
			return tx.SetOffset(ctx, "crash", struct{ Batch int64 }{b})
		})
		if err != nil {
			os.Exit(3)
		}
	}
}
