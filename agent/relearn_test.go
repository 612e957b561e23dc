package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

func (h *harness) versions() []baseline.Version {
	st, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		return nil
	}
	defer st.Close()
	var vs []baseline.Version
	st.MetaJSON(context.Background(), MetaBaselines, &vs)
	return vs
}

func (h *harness) relearnStatus() RelearnStatus {
	st, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		return RelearnStatus{}
	}
	defer st.Close()
	_, rs, _ := LoadRelearn(context.Background(), st)
	return rs
}

func (h *harness) requestRelearn(period time.Duration) {
	h.t.Helper()
	st, err := state.Open(context.Background(), h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	if _, err := RequestRelearn(context.Background(), st, period, "test", time.Now()); err != nil {
		h.t.Fatal(err)
	}
}

// TestRelearn: a relearn requested while the agent runs starts within a
// heartbeat, keeps the deviation rules on against the old version, and
// ends in version 2 holding what it saw; one requested while the agent is
// stopped starts at the next start and ends in version 3.
func TestRelearn(t *testing.T) {
	h := newHarness(t)
	h.policy.Learning.Period = schema.Duration(500 * time.Millisecond)
	h.start()
	login := func(ip string) string {
		return fmt.Sprintf("%s host sshd[7]: Accepted password for alice from %s port 2200 ssh2", time.Now().Format(time.Stamp), ip)
	}
	h.appendLines(login("192.0.2.50"))
	h.waitFor("baseline version 1", func() bool { return len(h.versions()) == 1 })

	// Long enough that, on a loaded machine, the relearn is still running
	// when the test sees it start and when the next line is processed.
	h.requestRelearn(3 * time.Second)
	h.waitFor("relearn running", func() bool { return h.relearnStatus().Active })
	h.appendLines(login("198.51.100.9"))
	h.waitFor("deviation during relearn", func() bool {
		for _, in := range h.incidents() {
			for _, s := range in.Signals {
				if s.Rule == baseline.RuleAuthAnomaly && strings.Contains(s.Reason, "198.51.100.9") {
					return true
				}
			}
		}
		return false
	})
	// The version and the relearn's own status are two writes: wait for
	// both rather than read between them.
	h.waitFor("baseline version 2", func() bool { return len(h.versions()) == 2 && !h.relearnStatus().Active })
	v2 := h.versions()[1]
	if v2.Reason != "relearn" || !strings.Contains(string(v2.Kinds[baseline.KindAuth]), "198.51.100.0/24") ||
		strings.Contains(string(v2.Kinds[baseline.KindAuth]), "192.0.2.0/24") {
		t.Errorf("version 2 (%s) learned from scratch?\n%s", v2.Reason, v2.Kinds[baseline.KindAuth])
	}
	if rs := h.relearnStatus(); rs.Active || rs.Promoted != 2 {
		t.Errorf("relearn status after promotion: %+v", rs)
	}
	h.stop()

	h.requestRelearn(300 * time.Millisecond)
	h.start()
	h.waitFor("baseline version 3", func() bool { return len(h.versions()) == 3 })
	h.stop()

	st, _ := state.OpenReadOnly(context.Background(), h.dir)
	defer st.Close()
	var msgs []string
	st.EachAudit(context.Background(), state.AuditFilter{}, func(e audit.Entry) error {
		if strings.Contains(e.Message, "relearn") || e.Kind == audit.KindBaseline {
			msgs = append(msgs, e.Message)
		}
		return nil
	})
	want := []string{"baseline version 1 promoted (end of learning period)", "baseline relearn requested by test for 3s",
		"baseline relearn started", "baseline version 2 promoted (relearn)", "baseline relearn requested by test for 300ms",
		"baseline relearn started", "baseline version 3 promoted (relearn)"}
	if len(msgs) != len(want) {
		t.Fatalf("audit:\n%s", strings.Join(msgs, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(msgs[i], w) {
			t.Errorf("audit %d: %q, want %q…", i, msgs[i], w)
		}
	}
}

func TestRelearnRefusedDuringFirstLearning(t *testing.T) {
	h := newHarness(t)
	h.policy.Learning.Period = schema.Duration(48 * time.Hour)
	h.start()
	h.requestRelearn(time.Hour)
	h.waitFor("request handled", func() bool { return h.relearnStatus().Request != 0 })
	if rs := h.relearnStatus(); rs.Active || !strings.Contains(rs.Note, "refused") {
		t.Errorf("relearn during the first learning period: %+v", rs)
	}
	h.stop()
	st, _ := state.Open(context.Background(), h.dir)
	defer st.Close()
	if _, err := RequestRelearn(context.Background(), st, 100*time.Hour, "", time.Now()); err == nil {
		t.Error("a 100h relearn was accepted")
	}
}
