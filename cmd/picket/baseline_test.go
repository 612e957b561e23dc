package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/state"
)

func TestBaselineCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, _, code := picket(t, "baseline", "status", "--state-dir", dir); code != exitFailure {
		t.Errorf("status without state: exit %d", code)
	}
	st, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	m := baseline.NewModel(baseline.DefaultCaps())
	at := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	exec := func(parent, exe string) *event.Event {
		return &event.Event{Time: at, Kind: event.ProcExec, Proc: &event.Process{PID: 10, Comm: exe, Exe: "/usr/bin/" + exe, User: "www-data", UID: 33,
			Lineage: []event.Ancestor{{PID: 5, Comm: parent, Exe: "/usr/sbin/" + parent}}}}
	}
	m.Learn(exec("php-fpm8.2", "sh"))
	m.Learn(&event.Event{Time: at, Kind: event.AuthSuccess, User: "alice", Method: "publickey", Addr: netip.MustParseAddr("192.0.2.7")})
	vs, _ := baseline.NewVersions(nil)
	vs.Promote(m, "end of learning period", at)
	m.Learn(exec("php-fpm8.2", "convert"))
	vs.Promote(m, "relearn", at.Add(time.Hour))
	if err := st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, agent.MetaBaselines, vs.All()) }); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, _, code := picket(t, "baseline", "status", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "version 1  2025-03-03T10:00:00Z  end of learning period:") || !strings.Contains(out, "version 2") {
		t.Errorf("status: %d\n%s", code, out)
	}
	out, _, code = picket(t, "baseline", "show", "process", "--version", "1", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "/usr/bin/sh") || strings.Contains(out, "convert") {
		t.Errorf("show process v1: %d\n%s", code, out)
	}
	out, _, code = picket(t, "baseline", "diff", "1", "2", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "+ process:") || !strings.Contains(out, "convert") {
		t.Errorf("diff: %d\n%s", code, out)
	}
	for _, kind := range baseline.AllKinds() {
		if out, _, code := picket(t, "baseline", "show", kind, "--state-dir", dir); code != exitOK || !strings.HasPrefix(out, "baseline version 2") {
			t.Errorf("show %s: %d\n%s", kind, code, out)
		}
	}

	// relearn while the agent is stopped: recorded, audited, shown.
	if _, _, code := picket(t, "baseline", "relearn", "--period", "100h", "--state-dir", dir); code != exitUsage {
		t.Errorf("relearn 100h: exit %d", code)
	}
	if _, _, code := picket(t, "baseline", "relearn", "--state-dir", t.TempDir()); code != exitFailure {
		t.Errorf("relearn without state: exit %d", code)
	}
	out, _, code = picket(t, "baseline", "relearn", "--period", "24h", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "relearn requested for 24h0m0s") {
		t.Errorf("relearn: %d\n%s", code, out)
	}
	out, _, code = picket(t, "baseline", "status", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "relearn: requested at ") {
		t.Errorf("status after relearn: %d\n%s", code, out)
	}
	out, _, _ = picket(t, "audit", "--state-dir", dir)
	if !strings.Contains(out, "baseline relearn requested by picket baseline relearn") {
		t.Errorf("relearn not audited:\n%s", out)
	}

	for _, args := range [][]string{{"baseline"}, {"baseline", "frob"}, {"baseline", "diff", "1"}, {"baseline", "show", "nosuchkind"}, {"baseline", "relearn", "x"}} {
		if _, _, code := picket(t, append(args, "--state-dir", dir)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
