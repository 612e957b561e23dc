package syncer

import (
	"context"
	"strings"
	"testing"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
)

// TestAppliedNoteInAudit: what AppliedNote returns after a successful
// Apply (the agent's "restart needed for: ...") ends the config.applied
// entry; an empty note adds nothing.
func TestAppliedNoteInAudit(t *testing.T) {
	e := newEnv(t)
	note := "restart needed for: sensors.auth"
	s, err := New(Config{Hostname: host, Bootstrap: e.boot, StateDir: e.stateDir, Store: e.st,
		StatusJSON:  func() []byte { return []byte(`{"state":"running"}` + "\n") },
		Apply:       func(context.Context, *schema.Policy, string, string) error { return nil },
		AppliedNote: func() string { return note }})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	msgs := e.auditMessages(audit.KindConfigApplied)
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0], "; restart needed for: sensors.auth") {
		t.Fatalf("config.applied: %q", msgs)
	}
	note = ""
	pol := strings.Replace(e.policyFile(), "contain: 50", "contain: 45", 1)
	e.commit(map[string]string{"picket.cue": pol}, "lower contain to 45", "admin")
	e.push(false, "main")
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	msgs = e.auditMessages(audit.KindConfigApplied)
	if len(msgs) != 2 || strings.Contains(msgs[1], "restart") {
		t.Fatalf("config.applied: %q", msgs)
	}
}
