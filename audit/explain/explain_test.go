package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// TestPlansSayWhyNot: the story states the correlation scope, and a plan
// that was withheld or refused says why, from its recorded reason.
func TestPlansSayWhyNot(t *testing.T) {
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	in := &correlate.Incident{ID: 4, Opened: at, Updated: at, Status: correlate.Open, Level: correlate.Contain, Score: 50,
		Entities: []signal.Entity{{Kind: signal.Process, Value: "1079"}, {Kind: signal.IP, Value: "127.0.0.1"}},
		Signals: []signal.Signal{{Time: at, Rule: "process.exec_memfd", Stage: signal.Execution, Weight: 50,
			Entities: []signal.Entity{{Kind: signal.Process, Value: "1079"}}, Reason: "running a program from a memfd"}}}
	plans := []respond.Plan{
		{Action: respond.KillTree, Target: "1079", TTL: schema.Duration(time.Hour), Status: respond.StatusUncorroborated,
			Reason: "incident 4 at contain (score 50): kill the offending process tree" + respond.WithheldMarker + "uncorroborated: needs 2 distinct rules; has 1 (process.exec_memfd)"},
		{Action: respond.BlockSource, Target: "127.0.0.1", TTL: schema.Duration(time.Hour), Status: respond.StatusGuarded,
			Reason: "incident 4 at contain (score 50): block the source address" + respond.RefusedMarker + "loopback"},
		{Action: respond.KillTree, Target: "1080", TTL: schema.Duration(time.Hour), Status: respond.StatusPlanned,
			Reason: "incident 4 at contain (score 50): kill the offending process tree; corroborated by strong rule process.reverse_shell"},
	}
	var a, b strings.Builder
	sc := correlate.Score(in.Signals, p, nil)
	if err := Incident(&a, in, sc, p.Levels, plans, Options{Evidence: 1}); err != nil {
		t.Fatal(err)
	}
	Incident(&b, in, sc, p.Levels, plans, Options{Evidence: 1})
	got := a.String()
	if got != b.String() {
		t.Fatal("two renderings differ")
	}
	for _, want := range []string{
		"  correlation: signals join on a shared ip,",
		"a common session ancestor is never a reason to join\n",
		"    kill-tree 1079 for 1h0m0s [withheld-uncorroborated] uncorroborated: needs 2 distinct rules; has 1 (process.exec_memfd)\n",
		"    block-source 127.0.0.1 for 1h0m0s [refused-guard] loopback\n",
		"    kill-tree 1080 for 1h0m0s [planned]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explanation lacks %q:\n%s", want, got)
		}
	}
}
