package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/netnstest"
	"github.com/picket-agent/picket/state"
)

// TestEmergencyStop runs `picket emergency-stop` inside a network namespace
// holding picket's table and a journaled block: the journal entry is rolled
// back, the table is gone, the breaker is tripped and audited.
func TestEmergencyStop(t *testing.T) {
	bin := binary(t)
	nft := integration.Binary(t, "nft")
	ns := netnstest.New(t, "estop", "s")
	ns.Exec(t, nft, "add table inet picket")
	dir := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	st, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = st.Update(ctx, func(tx *state.Tx) error {
		_, err := tx.AddAction(ctx, state.ActionRow{Incident: 1, Kind: actions.BlockSource, Target: "198.51.100.7", Status: actions.StatusApplied,
			Created: now, Applied: now, Expires: now.Add(time.Hour), Reason: "test"})
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, bin, "emergency-stop", "--state-dir", dir, "--config", filepath.Join(dir, "absent.cue"))
	cmd.Env = append(cmd.Environ(), "PICKET_NOLOGIN="+filepath.Join(t.TempDir(), "nologin"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rolled back action 1") || !strings.Contains(string(out), "done") {
		t.Fatalf("emergency-stop: %v\n%s", err, out)
	}
	if tables := ns.Exec(t, nft, "list", "tables"); strings.Contains(tables, "picket") {
		t.Fatalf("table left: %s", tables)
	}
	st, err = state.OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, _ := st.Action(ctx, 1)
	var b actions.Breaker
	st.MetaJSON(ctx, actions.MetaBreaker, &b)
	if a.Status != actions.StatusRolledBack || !b.Tripped {
		t.Fatalf("journal %s, breaker %+v", a.Status, b)
	}
	// Idempotent.
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, bin, "emergency-stop", "--state-dir", dir,
		"--config", filepath.Join(dir, "absent.cue")).CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
}
