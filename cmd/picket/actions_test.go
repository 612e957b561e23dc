package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/state"
)

// TestActionsCommands lists a journal, resumes a tripped breaker and
// refuses bad rollbacks; the real rollbacks are tested with the executors
// in agent/hands_linux_test.go.
func TestActionsCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = st.Update(ctx, func(tx *state.Tx) error {
		rows := []state.ActionRow{
			{Incident: 3, Kind: actions.BlockSource, Target: "198.51.100.7", Status: actions.StatusApplied, Created: now,
				Applied: now, Expires: now.Add(42 * time.Minute), Reason: "ssh brute force", Note: "nftables: inbound dropped"},
			{Incident: 3, Kind: actions.DisableUser, Target: "root", Status: actions.StatusRefused, Created: now, Note: "never touched: root"},
			{Incident: 4, Kind: actions.BlockSource, Target: "198.51.100.8", Status: actions.StatusApplied, Created: now,
				Applied: now, Expires: now.Add(2 * time.Hour), Reason: "ssh brute force"},
		}
		for _, r := range rows {
			if _, err := tx.AddAction(ctx, r); err != nil {
				return err
			}
		}
		return tx.SetMetaJSON(ctx, actions.MetaBreaker, actions.Breaker{Tripped: true, At: now, Count: 31, Max: 30})
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := picket(t, "actions", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "CIRCUIT BREAKER TRIPPED") || !strings.Contains(out, "198.51.100.7") ||
		!strings.Contains(out, "in 42m ") || !strings.Contains(out, "in 2h ") || strings.Contains(out, "root") {
		t.Errorf("actions: %d\n%s", code, out)
	}
	out, _, code = picket(t, "actions", "--all", "--json", "--state-dir", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rec actionRecord
	if code != exitOK || len(lines) != 3 || json.Unmarshal([]byte(lines[1]), &rec) != nil || rec.Status != actions.StatusRefused || rec.Target != "root" {
		t.Errorf("actions --all --json: %d\n%s", code, out)
	}
	if _, _, code = picket(t, "actions", "rollback", "2", "--state-dir", dir); code != exitFailure {
		t.Errorf("rollback of a refused action: exit %d", code)
	}
	if _, _, code = picket(t, "actions", "rollback", "99", "--state-dir", dir); code != exitUsage {
		t.Errorf("rollback of a missing action: exit %d", code)
	}
	if _, _, code = picket(t, "actions", "rollback", "x", "--state-dir", dir); code != exitUsage {
		t.Errorf("rollback x: exit %d", code)
	}
	out, _, code = picket(t, "actions", "resume", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "reset") {
		t.Errorf("resume: %d %s", code, out)
	}
	out, _, _ = picket(t, "actions", "resume", "--state-dir", dir)
	if !strings.Contains(out, "not tripped") {
		t.Errorf("second resume: %s", out)
	}
	out, _, code = picket(t, "emergency-stop", "--print-script")
	if code != exitOK || !strings.HasPrefix(out, "#!/bin/sh") {
		t.Errorf("print-script: %d", code)
	}
}
