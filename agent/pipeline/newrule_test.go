package pipeline

import (
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// scripted emits one prepared signal per event, in order.
type scripted struct{ sigs []signal.Signal }

func (d *scripted) Observe(ev *event.Event, emit func(signal.Signal)) {
	if len(d.sigs) > 0 {
		s := d.sigs[0]
		d.sigs = d.sigs[1:]
		s.Time = ev.Time
		emit(s)
	}
}

// TestNewRuleAtSameLevelPlansAgain: a kill withheld for lack of
// corroboration is planned when a second rule joins the incident, even
// though the level does not rise.
func TestNewRuleAtSameLevelPlansAgain(t *testing.T) {
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	p.Mode = "enforce"
	p.Correlation.StageEscalation = false
	proc := []signal.Entity{{Kind: signal.Process, Value: "4242"}}
	det := &scripted{sigs: []signal.Signal{
		{Rule: "process.exec_memfd", Stage: signal.Execution, Weight: p.Levels.Contain, Entities: proc, Reason: "one heuristic", Subject: "pid:4242"},
		{Rule: "process.exec_tmp", Stage: signal.Execution, Weight: p.Levels.Contain, Entities: proc, Reason: "a second rule", Subject: "pid:4243"},
	}}
	pl, err := New(p, Options{Detectors: func(*schema.Policy) []detect.Detector { return []detect.Detector{det} }})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	statuses := func() map[string]string {
		out := map[string]string{}
		for _, pln := range pl.Take().Plans {
			if pln.Action == respond.KillTree {
				out[pln.Target] = pln.Status
			}
		}
		return out
	}
	pl.Process(&event.Event{Time: t0, Kind: event.ProcExec, Proc: &event.Process{PID: 4242}})
	first := statuses()
	if first["4242"] == respond.StatusPlanned {
		t.Fatalf("kill planned on one heuristic rule: %v", first)
	}
	pl.Process(&event.Event{Time: t0.Add(time.Second), Kind: event.ProcExec, Proc: &event.Process{PID: 4243}})
	if got := statuses(); got["4242"] != respond.StatusPlanned {
		t.Fatalf("second rule at the same level: kill-tree plans %v, want 4242 planned", got)
	}
}
