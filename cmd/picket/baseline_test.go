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
	for _, args := range [][]string{{"baseline"}, {"baseline", "frob"}, {"baseline", "diff", "1"}, {"baseline", "show", "nosuchkind"}} {
		if _, _, code := picket(t, append(args, "--state-dir", dir)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
