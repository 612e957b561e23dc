package respond

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

func setup(t *testing.T) (*schema.Policy, *whitelist.Matcher) {
	t.Helper()
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	p.Whitelist.AdminIPs = map[string]schema.WhitelistIP{"office": {CIDR: "203.0.113.0/24"}}
	wl, err := whitelist.New(p.Whitelist)
	if err != nil {
		t.Fatal(err)
	}
	return p, wl
}

func incident(level correlate.Level, ents ...signal.Entity) *correlate.Incident {
	in := &correlate.Incident{ID: 1, Level: level, Entities: ents}
	in.Signals = []signal.Signal{{Rule: "ssh.login_after_failures", Stage: signal.InitialAccess, Entities: ents}}
	return in
}

func actions(ps []Plan) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Action+" "+p.Target+" "+p.Status+" "+p.TTL.String())
	}
	return strings.Join(out, "; ")
}

func TestPlansPerLevel(t *testing.T) {
	p, wl := setup(t)
	ents := []signal.Entity{{Kind: signal.IP, Value: "192.0.2.1"}, {Kind: signal.User, Value: "deploy"}}
	cases := []struct {
		level correlate.Level
		want  string
	}{
		{correlate.Observe, ""},
		{correlate.Contain, "block-ip 192.0.2.1 planned 1h0m0s"},
		{correlate.Aggressive, "block-ip 192.0.2.1 planned 1h0m0s; disable-user deploy planned 1h0m0s; end-sessions deploy planned 1h0m0s"},
		{correlate.Lockdown, "block-ip 192.0.2.1 planned 1h0m0s; disable-user deploy planned 1h0m0s; end-sessions deploy planned 1h0m0s; containment host planned 30m0s"},
	}
	for _, c := range cases {
		r := New(p, wl)
		if got := actions(r.Plan(incident(c.level, ents...), time.Now(), Mode{})); got != c.want {
			t.Errorf("%s: %q, want %q", c.level, got, c.want)
		}
	}
}

func TestNoDuplicatePlans(t *testing.T) {
	p, wl := setup(t)
	r := New(p, wl)
	in := incident(correlate.Contain, signal.Entity{Kind: signal.IP, Value: "192.0.2.1"})
	if n := len(r.Plan(in, time.Now(), Mode{})); n != 1 {
		t.Fatalf("%d plans", n)
	}
	if n := len(r.Plan(in, time.Now(), Mode{})); n != 0 {
		t.Fatalf("replanned the same block: %d", n)
	}
	r.Forget(1)
	if n := len(r.Plan(in, time.Now(), Mode{})); n != 1 {
		t.Fatalf("after Forget: %d", n)
	}
}

func TestGuardsAndModes(t *testing.T) {
	p, wl := setup(t)
	r := New(p, wl)
	in := incident(correlate.Aggressive,
		signal.Entity{Kind: signal.IP, Value: "203.0.113.9"}, signal.Entity{Kind: signal.IP, Value: "127.0.0.1"},
		signal.Entity{Kind: signal.IP, Value: "::1"}, signal.Entity{Kind: signal.User, Value: "root"})
	got := actions(r.Plan(in, time.Now(), Mode{}))
	for _, want := range []string{"block-ip 203.0.113.9 refused-guard", "block-ip 127.0.0.1 refused-guard", "block-ip ::1 refused-guard", "disable-user root refused-guard"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	r = New(p, wl)
	in = incident(correlate.Contain, signal.Entity{Kind: signal.IP, Value: "192.0.2.1"})
	if got := actions(r.Plan(in, time.Now(), Mode{Learning: true})); !strings.Contains(got, StatusLearning) {
		t.Errorf("learning: %q", got)
	}
	p.Mode = "observe"
	r = New(p, wl)
	if got := actions(r.Plan(in, time.Now(), Mode{})); !strings.Contains(got, StatusObserve) {
		t.Errorf("observe mode: %q", got)
	}
}

func TestTTLCapped(t *testing.T) {
	p, wl := setup(t)
	p.Actions.BlockTTL = schema.Duration(48 * time.Hour)
	r := New(p, wl)
	ps := r.Plan(incident(correlate.Contain, signal.Entity{Kind: signal.IP, Value: "192.0.2.1"}), time.Now(), Mode{})
	if len(ps) != 1 || ps[0].TTL != p.Actions.MaxTTL {
		t.Fatalf("ttl %v, want capped at %v", ps[0].TTL, p.Actions.MaxTTL)
	}
}
