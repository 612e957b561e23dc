package correlate

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/signal"
)

// open → escalated (level rose) → contained (an action in force) →
// escalated again (level rose further) → contained → closed (operator, or
// quiet for the window); each state survives the JSON round trip the
// agent stores incidents with, and Restore keeps every non-closed state.
func TestLifecycle(t *testing.T) {
	p := policy(t)
	c := New(p, nil, 1)
	step := func(name string, want Status, in *Incident) {
		t.Helper()
		if in.Status != want {
			t.Fatalf("%s: status %s, want %s", name, in.Status, want)
		}
		b, _ := json.Marshal(in)
		var back Incident
		if err := json.Unmarshal(b, &back); err != nil || back.Status != want {
			t.Fatalf("%s: round trip %s (%v)", name, back.Status, err)
		}
		if want != Closed {
			c2 := New(p, nil, 1)
			c2.Restore(&back)
			if len(c2.Open()) != 1 || c2.Open()[0].Status != want {
				t.Fatalf("%s: not restored as %s", name, want)
			}
		}
	}
	ch, _ := c.Add(sig("scan", signal.Recon, 30, 0, ip("198.51.100.1")))
	step("first signal", Open, ch.Incident)
	ch, _ = c.Add(sig("login", signal.InitialAccess, 40, time.Minute, ip("198.51.100.1"), user("deploy")))
	step("second stage", Escalated, ch.Incident)
	id := ch.Incident.ID
	in, ok := c.MarkContained(id)
	if !ok {
		t.Fatal("MarkContained refused an open incident")
	}
	step("action in force", Contained, in)
	ch, _ = c.Add(sig("login", signal.InitialAccess, 40, 2*time.Minute, user("deploy")))
	step("same level again", Contained, ch.Incident)
	ch, _ = c.Add(sig("exec", signal.Execution, 30, 3*time.Minute, user("deploy")))
	step("level rose while contained", Escalated, ch.Incident)
	c.MarkContained(id)
	in, ok = c.Close(id)
	if !ok {
		t.Fatal("Close refused an open incident")
	}
	step("closed by operator", Closed, in)
	if _, ok := c.MarkContained(id); ok {
		t.Error("a closed incident was marked contained")
	}
	if _, ok := c.Close(id); ok {
		t.Error("a closed incident was closed twice")
	}
	// A contained incident closes when quiet for the window, too.
	ch, _ = c.Add(sig("scan", signal.Recon, 30, time.Hour, ip("198.51.100.2")))
	c.MarkContained(ch.Incident.ID)
	closed := c.Tick(t0.Add(time.Hour + p.Correlation.Window.D() + time.Second))
	if len(closed) != 1 || closed[0].Status != Closed {
		t.Errorf("quiet contained incident not closed: %v", closed)
	}
}
