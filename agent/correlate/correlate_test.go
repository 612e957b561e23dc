package correlate

import (
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

func policy(t *testing.T) *schema.Policy {
	t.Helper()
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)

func sig(rule string, stage signal.Stage, w float64, at time.Duration, ents ...signal.Entity) signal.Signal {
	return signal.Signal{Time: t0.Add(at), Rule: rule, Stage: stage, Weight: w, Entities: ents, Reason: rule}
}

func ip(v string) signal.Entity   { return signal.Entity{Kind: signal.IP, Value: v} }
func user(v string) signal.Entity { return signal.Entity{Kind: signal.User, Value: v} }

func TestLevelsAndEscalation(t *testing.T) {
	p := policy(t) // observe 20, contain 50, aggressive 100, lockdown 150
	cases := []struct {
		name  string
		sigs  []signal.Signal
		score float64
		level Level
	}{
		{"one weak signal", []signal.Signal{sig("a", signal.Recon, 10, 0, ip("1"))}, 10, None},
		{"one strong signal", []signal.Signal{sig("a", signal.Recon, 50, 0, ip("1"))}, 50, Contain},
		{"same stage counts once", []signal.Signal{sig("a", signal.Recon, 50, 0, ip("1")), sig("b", signal.Recon, 50, 0, ip("1"))}, 50, Contain},
		{"second stage adds and escalates", []signal.Signal{sig("a", signal.Recon, 50, 0, ip("1")), sig("b", signal.InitialAccess, 40, 0, ip("1"))}, 90, Aggressive},
		{"third stage escalates again", []signal.Signal{sig("a", signal.Recon, 50, 0, ip("1")), sig("b", signal.InitialAccess, 40, 0, ip("1")), sig("c", signal.Execution, 20, 0, ip("1"))}, 110, Lockdown},
		{"escalation capped at lockdown", []signal.Signal{sig("a", signal.Recon, 200, 0), sig("b", signal.Execution, 1, 0)}, 201, Lockdown},
	}
	for _, c := range cases {
		sc := Score(c.sigs, p, nil)
		if sc.Score != c.score || sc.Level != c.level {
			t.Errorf("%s: score %g level %s, want %g %s", c.name, sc.Score, sc.Level, c.score, c.level)
		}
	}
	p.Correlation.StageEscalation = false
	if sc := Score(cases[3].sigs, p, nil); sc.Level != Contain {
		t.Errorf("without stage escalation: %s", sc.Level)
	}
}

func TestCaps(t *testing.T) {
	p := policy(t)
	tool := sig("suricata", signal.Recon, 500, 0, ip("1"))
	tool.Tool = true
	if sc := Score([]signal.Signal{tool}, p, nil); sc.Level != Observe || sc.Capped == "" {
		t.Errorf("tool-only incident: %s %q, want observe, capped", sc.Level, sc.Capped)
	}
	trusted := func(e signal.Entity) bool { return e.Value == "10.0.0.1" }
	s := sig("a", signal.Recon, 100, 0, ip("10.0.0.1"))
	if sc := Score([]signal.Signal{s}, p, trusted); sc.Level != Observe {
		t.Errorf("trusted source: %s", sc.Level)
	}
	if sc := Score([]signal.Signal{s, sig("b", signal.Recon, 10, 0, ip("192.0.2.1"))}, p, trusted); sc.Level != Aggressive {
		t.Errorf("trusted plus untrusted source: %s, want aggressive", sc.Level)
	}
}

func TestCorrelation(t *testing.T) {
	p := policy(t)
	c := New(p, nil, 7)
	ch, _ := c.Add(sig("a", signal.Recon, 50, 0, ip("192.0.2.1")))
	if !ch.New || ch.Incident.ID != 7 || !ch.LevelRaised {
		t.Fatalf("first: %+v", ch)
	}
	// A different source: a separate incident.
	ch2, _ := c.Add(sig("a", signal.Recon, 50, time.Minute, ip("192.0.2.2")))
	if ch2.Incident.ID != 8 {
		t.Fatalf("second source joined incident %d", ch2.Incident.ID)
	}
	// The first source logs in as deploy: joins incident 7 and escalates.
	ch3, _ := c.Add(sig("b", signal.InitialAccess, 40, 2*time.Minute, ip("192.0.2.1"), user("deploy")))
	if ch3.Incident.ID != 7 || ch3.New || !ch3.LevelRaised || ch3.Incident.Status != Escalated {
		t.Fatalf("login: %+v", ch3)
	}
	// A signal sharing deploy with 7 and 192.0.2.2 with 8 merges them into 7.
	ch4, closed := c.Add(sig("c", signal.Execution, 10, 3*time.Minute, user("deploy"), ip("192.0.2.2")))
	if ch4.Incident.ID != 7 || len(ch4.Merged) != 1 || ch4.Merged[0] != 8 || len(closed) != 1 || closed[0].Status != Closed {
		t.Fatalf("merge: %+v closed %v", ch4, closed)
	}
	if len(c.Open()) != 1 {
		t.Fatalf("%d open after merge", len(c.Open()))
	}
	// After the window, the same source opens a fresh incident.
	ch5, closed := c.Add(sig("a", signal.Recon, 50, 3*time.Minute+p.Correlation.Window.D()+time.Second, ip("192.0.2.1")))
	if !ch5.New || ch5.Incident.ID != 9 || len(closed) != 1 || closed[0].ID != 7 {
		t.Fatalf("after window: %+v, closed %v", ch5, closed)
	}
}

func TestSignalCapAndRepeats(t *testing.T) {
	p := policy(t)
	c := New(p, nil, 1)
	for i := 0; i < 10; i++ {
		c.Add(sig("a", signal.Recon, 50, time.Duration(i)*time.Second, ip("192.0.2.1")))
	}
	in := c.Open()[0]
	if len(in.Signals) != 2 || !in.Signals[1].Time.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("repeats of one pattern: %d signals, last %v", len(in.Signals), in.Signals[len(in.Signals)-1].Time)
	}
	for i := 0; i < 2*MaxSignals; i++ {
		c.Add(sig("r"+string(rune('A'+i%50))+string(rune('a'+i/50)), signal.Recon, 1, time.Minute, ip("192.0.2.1")))
	}
	if n := len(c.Open()[0].Signals); n > MaxSignals {
		t.Fatalf("%d signals kept, cap %d", n, MaxSignals)
	}
}

func TestMaxOpenIncidents(t *testing.T) {
	p := policy(t)
	p.Correlation.MaxOpenIncidents = 3
	c := New(p, nil, 1)
	var closed []*Incident
	for i := 0; i < 5; i++ {
		_, cl := c.Add(sig("a", signal.Recon, 50, time.Duration(i)*time.Second, ip(string(rune('a'+i)))))
		closed = append(closed, cl...)
	}
	if len(c.Open()) != 3 || len(closed) != 2 || closed[0].ID != 1 || closed[1].ID != 2 {
		t.Fatalf("open %d, closed %v", len(c.Open()), closed)
	}
}

func TestLevelText(t *testing.T) {
	for l := None; l <= Lockdown; l++ {
		b, _ := l.MarshalText()
		var back Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("%s round trip: %v %v", l, back, err)
		}
	}
	var l Level
	if err := l.UnmarshalText([]byte("panic")); err == nil {
		t.Error("unknown level accepted")
	}
}

// TestDistinctSubjectsKept: findings of one rule on the same entity about
// different processes are all kept, not collapsed like re-reports.
func TestDistinctSubjectsKept(t *testing.T) {
	c := New(policy(t), nil, 1)
	for i, subj := range []string{"pid:1", "pid:2", "pid:3"} {
		s := sig("process.web_suspicious_child", signal.Execution, 60, time.Duration(i)*time.Second, signal.Entity{Kind: signal.Process, Value: "1201"})
		s.Subject = subj
		c.Add(s)
	}
	if n := len(c.Open()[0].Signals); n != 3 {
		t.Fatalf("%d signals kept, want 3", n)
	}
}
