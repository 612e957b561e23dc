package feedback

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

func open(t *testing.T) *state.Store {
	st, err := state.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func addIncident(t *testing.T, st *state.Store, rule, ip string, withAction bool) {
	ctx := context.Background()
	now := time.Now()
	in := correlate.Incident{ID: 1, Opened: now, Updated: now, Level: correlate.Contain, Score: 60,
		Signals: []signal.Signal{{Time: now, Rule: rule, Weight: 60, Entities: []signal.Entity{{Kind: signal.IP, Value: ip}}, Reason: "r"}}}
	doc, _ := json.Marshal(in)
	err := st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutIncident(ctx, state.IncidentRow{ID: 1, Opened: now, Updated: now, Status: "open", Level: "contain", Score: 60, Doc: doc}); err != nil {
			return err
		}
		if withAction {
			_, err := tx.AddAction(ctx, state.ActionRow{Incident: 1, Kind: "block-source", Target: ip, Status: "applied", Created: now, Applied: now, Expires: now.Add(time.Hour)})
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Request
		ok   bool
	}{
		{"fp incident", Request{Verdict: FalsePositive, Incident: 1}, true},
		{"fp both", Request{Verdict: FalsePositive, Incident: 1, Action: 2}, false},
		{"fp none", Request{Verdict: FalsePositive}, false},
		{"unknown", Request{Verdict: "meh", Incident: 1}, false},
		{"missed entity", Request{Verdict: Missed, Entity: "ip:198.18.0.1"}, true},
		{"missed bad ip", Request{Verdict: Missed, Entity: "ip:nope"}, false},
		{"missed bad kind", Request{Verdict: Missed, Entity: "host:x"}, false},
		{"missed nothing", Request{Verdict: Missed}, false},
		{"missed range", Request{Verdict: Missed, From: time.Unix(10, 0), To: time.Unix(20, 0)}, true},
		{"missed inverted", Request{Verdict: Missed, From: time.Unix(20, 0), To: time.Unix(10, 0)}, false},
		{"long note", Request{Verdict: Correct, Incident: 1, Note: strings.Repeat("x", 5000)}, false},
	} {
		err := c.r.Validate()
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestTooAggressiveDampsRule(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	addIncident(t, st, "web.scan", "198.18.0.9", true)
	var rolled []int64
	fx := NewEffects(nil)
	p := NewProcessor(Config{Store: st, Effects: fx, Hostname: "h",
		Rollback: func(_ context.Context, id int64, _ string) error { rolled = append(rolled, id); return nil }})
	row, err := Record(ctx, st, Request{Verdict: TooAggressive, Incident: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rolled) != 1 || len(res.Dampers) != 1 || len(res.Proposals) != 0 {
		t.Fatalf("result %+v rolled %v", res, rolled)
	}
	s, keep := fx.Signal(signal.Signal{Rule: "web.scan", Weight: 60})
	if !keep || s.Weight != 30 {
		t.Fatalf("damped signal: keep=%v weight=%g", keep, s.Weight)
	}
	// At the default thresholds (contain 50) a 60-weight signal now stays
	// at observe: one level down.
	pol, _ := schema.Default()
	c := correlate.New(pol, func(signal.Entity) bool { return false }, 1)
	s.Time, s.Entities = time.Now(), []signal.Entity{{Kind: signal.IP, Value: "198.18.0.9"}}
	ch, _ := c.Add(s)
	if ch.Incident.Level != correlate.Observe {
		t.Fatalf("damped level %s", ch.Incident.Level)
	}
	if s, _ := fx.Signal(signal.Signal{Rule: "other", Weight: 60}); s.Weight != 60 {
		t.Fatal("another rule is damped")
	}
	// Expiry ends it.
	p.cfg.Now = func() time.Time { return time.Now().Add(DefaultDampenTTL + time.Minute) }
	if n, err := p.Expire(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	if s, _ := fx.Signal(signal.Signal{Rule: "web.scan", Weight: 60}); s.Weight != 60 {
		t.Fatal("damper outlived its expiry")
	}
	// Applying again returns the stored result, changes nothing.
	again, err := p.Apply(ctx, row.ID)
	if err != nil || again.Status != StatusApplied || len(rolled) != 1 {
		t.Fatalf("re-apply: %+v %v", again, err)
	}
}

func TestMissedDistrustsBaselineKeys(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	fx := NewEffects(nil)
	now := time.Now()
	bad := netip.MustParseAddr("198.18.0.66")
	conn := &event.Event{Time: now.Add(-time.Minute), Kind: event.NetConnect,
		Net:  &event.Socket{Proto: "tcp", Remote: bad, RPort: 4444},
		Proc: &event.Process{PID: 42, Exe: "/usr/bin/python3", Comm: "python3"}}
	other := &event.Event{Time: now.Add(-time.Minute), Kind: event.NetConnect,
		Net:  &event.Socket{Proto: "tcp", Remote: netip.MustParseAddr("198.18.0.5"), RPort: 443},
		Proc: &event.Process{PID: 7, Exe: "/usr/bin/curl", Comm: "curl"}}
	old := &event.Event{Time: now.Add(-3 * time.Hour), Kind: event.NetConnect,
		Net: &event.Socket{Proto: "tcp", Remote: bad, RPort: 22}}
	for _, ev := range []*event.Event{old, conn, other} {
		fx.Event(ev)
	}
	p := NewProcessor(Config{Store: st, Effects: fx, Hostname: "h"})
	row, err := Record(ctx, st, Request{Verdict: Missed, Entity: "ip:198.18.0.66", Note: "reverse shell"}, now)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := baseline.KeysOf(conn)
	if len(want) != 1 || len(res.Untrusted) != 1 || res.Untrusted[0] != want[0] {
		t.Fatalf("untrusted %v, want %v", res.Untrusted, want)
	}
	if !fx.Distrusted(want[0]) || fx.Distrusted(baseline.KeysOf(other)[0]) {
		t.Fatal("distrust not in effect, or too broad")
	}
	cases, _ := st.Cases(ctx)
	if len(cases) != 1 || cases[0].Label != Missed || !strings.Contains(string(cases[0].Doc), "4444") || strings.Contains(string(cases[0].Doc), `"rport":22`) {
		t.Fatalf("case: %+v", cases)
	}
	// A restarted agent loads the distrust from state.
	fx2 := NewEffects(nil)
	if err := fx2.Load(ctx, st); err != nil || !fx2.Distrusted(want[0]) {
		t.Fatalf("reload: %v", err)
	}
	// The deviation rule flags the key although the baseline knows it.
	m := baseline.NewModel(baseline.DefaultCaps())
	m.Learn(conn)
	cfg := baseline.Config{}
	var got []signal.Signal
	baseline.NewDeviations(m, cfg).Observe(conn, func(s signal.Signal) { got = append(got, s) })
	if len(got) != 0 {
		t.Fatalf("known key flagged without distrust: %v", got)
	}
	cfg.Distrusted = fx2.Distrusted
	baseline.NewDeviations(m, cfg).Observe(conn, func(s signal.Signal) { got = append(got, s) })
	if len(got) != 1 || got[0].Rule != baseline.RuleNewDestination {
		t.Fatalf("distrusted key not flagged: %v", got)
	}
}

func TestCorrectChangesNothing(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	addIncident(t, st, "auth.ssh_brute_force", "198.18.0.3", true)
	called := false
	fx := NewEffects(nil)
	p := NewProcessor(Config{Store: st, Effects: fx, Rollback: func(context.Context, int64, string) error { called = true; return nil }})
	row, err := Record(ctx, st, Request{Verdict: Correct, Incident: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(ctx, row.ID)
	if err != nil || res.Case == 0 || called {
		t.Fatalf("%+v %v called=%v", res, err, called)
	}
	if sups, _ := st.Suppressions(ctx, false); len(sups) != 0 {
		t.Fatal("correct created a suppression")
	}
	if _, err := Record(ctx, st, Request{Verdict: Correct, Incident: 99}, time.Now()); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("unknown incident: %v", err)
	}
}

func TestFalsePositiveDeduplicatesProposals(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	addIncident(t, st, "auth.ssh_brute_force", "198.18.0.4", false)
	p := NewProcessor(Config{Store: st, Hostname: "h"})
	var ids []int64
	for range 2 {
		row, err := Record(ctx, st, Request{Verdict: FalsePositive, Incident: 1}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Apply(ctx, row.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Proposals...)
	}
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("proposals %v", ids)
	}
	// Pending verdicts (given while no agent ran) are applied at start.
	row, _ := Record(ctx, st, Request{Verdict: Correct, Incident: 1}, time.Now())
	if _, err := p.Pending(ctx); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.Feedback(ctx, row.ID); f.Status != StatusApplied {
		t.Fatalf("pending not applied: %+v", f)
	}
}

func BenchmarkSignalHook(b *testing.B) {
	fx := NewEffects(nil)
	fx.suppress["r"] = []suppression{{entity: "ip:198.18.0.1", expires: time.Now().Add(time.Hour)}}
	s := signal.Signal{Rule: "r", Entities: []signal.Entity{{Kind: signal.IP, Value: "198.18.0.2"}}}
	for b.Loop() {
		fx.Signal(s)
	}
}
