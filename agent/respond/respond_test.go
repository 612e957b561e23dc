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

// incident is a guessed password: a brute force, then a login from the
// same address (two rules: corroborated).
func incident(level correlate.Level, ents ...signal.Entity) *correlate.Incident {
	in := &correlate.Incident{ID: 1, Level: level, Entities: ents}
	in.Signals = []signal.Signal{
		{Rule: "ssh.bruteforce", Stage: signal.InitialAccess, Weight: 50, Entities: ents[:1]},
		{Rule: "ssh.login_after_failures", Stage: signal.InitialAccess, Weight: 40, Entities: ents},
	}
	return in
}

func render(ps []Plan) string {
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
		{correlate.Contain, "block-source 192.0.2.1 planned 1h0m0s"},
		{correlate.Aggressive, "block-source 192.0.2.1 planned 1h0m0s; disable-user deploy planned 1h0m0s; end-sessions deploy planned 1h0m0s"},
		{correlate.Lockdown, "block-source 192.0.2.1 planned 1h0m0s; disable-user deploy planned 1h0m0s; end-sessions deploy planned 1h0m0s; containment host planned 30m0s"},
	}
	for _, c := range cases {
		r := New(p, wl)
		if got := render(r.Plan(incident(c.level, ents...), time.Now(), Mode{})); got != c.want {
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
	got := render(r.Plan(in, time.Now(), Mode{}))
	for _, want := range []string{"block-source 203.0.113.9 refused-guard", "block-source 127.0.0.1 refused-guard", "block-source ::1 refused-guard", "disable-user root refused-guard"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	r = New(p, wl)
	in = incident(correlate.Contain, signal.Entity{Kind: signal.IP, Value: "192.0.2.1"})
	if got := render(r.Plan(in, time.Now(), Mode{Learning: true})); !strings.Contains(got, StatusLearning) {
		t.Errorf("learning: %q", got)
	}
	p.Mode = "observe"
	r = New(p, wl)
	if got := render(r.Plan(in, time.Now(), Mode{})); !strings.Contains(got, StatusObserve) {
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

// TestTargets: sources and destinations are told apart, the first process
// of a signal is the one killed, recon signals name no user or process.
func TestTargets(t *testing.T) {
	p, wl := setup(t)
	in := &correlate.Incident{ID: 3, Level: correlate.Aggressive}
	in.Signals = []signal.Signal{
		{Rule: "web.scan", Stage: signal.Recon, Weight: 30, Entities: []signal.Entity{{Kind: signal.IP, Value: "192.0.2.9"}, {Kind: signal.User, Value: "scanned"}}},
		{Rule: "process.web_shell", Stage: signal.Execution, Weight: 60, Entities: []signal.Entity{
			{Kind: signal.Process, Value: "4242"}, {Kind: signal.Process, Value: "900"}, {Kind: signal.User, Value: "www-data"}}},
		{Rule: "net.web_egress", Stage: signal.Execution, Weight: 50, Subject: "dst:tcp:198.51.100.20:4444",
			Entities: []signal.Entity{{Kind: signal.IP, Value: "198.51.100.20"}, {Kind: signal.Container, Value: "web1"}}},
	}
	got := render(New(p, wl).Plan(in, time.Now(), Mode{}))
	want := "block-source 192.0.2.9 planned 1h0m0s; block-destination 198.51.100.20 planned 1h0m0s; kill-tree 4242 planned 1h0m0s; " +
		"disable-user www-data planned 1h0m0s; end-sessions www-data planned 1h0m0s; isolate-container web1 planned 1h0m0s"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// A policy that only blocks at contain plans nothing else.
	p.Actions.OnLevel.Contain = []string{"block-source"}
	p.Actions.OnLevel.Aggressive = nil
	if got := render(New(p, wl).Plan(in, time.Now(), Mode{})); got != "block-source 192.0.2.9 planned 1h0m0s" {
		t.Fatalf("restricted policy: %s", got)
	}
}
