package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/audit/explain"
	"github.com/picket-agent/picket/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

// learned runs a recorded week through the pipeline during the learning
// period (as the agent does: the model learns every event, the pipeline
// records read-only), promotes version 1, and returns a pipeline whose
// detectors include the deviation rules against it.
func learned(t testing.TB, p *schema.Policy, week []*event.Event) (*Pipeline, *baseline.Deviations) {
	t.Helper()
	model := baseline.NewModelIn(baseline.Caps{}, cet)
	learnEnd := week[len(week)-1].Time.Add(time.Second)
	var dev *baseline.Deviations
	dpkg := t.TempDir()
	pl, err := New(p, Options{
		Learning: func(at time.Time) bool { return at.Before(learnEnd) },
		Detectors: func(p *schema.Policy) []detect.Detector {
			if dev == nil {
				return nil
			}
			c := baseline.ConfigFromPolicy(p, dpkg)
			c.Loc = cet
			c.Packages = baseline.NewDpkg(dpkg, dpkg) // an empty dpkg database: no md5 explains anything
			return []detect.Detector{dev.WithConfig(c)}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range week {
		model.Learn(ev)
		pl.Process(ev)
	}
	pl.Tick(learnEnd.Add(time.Hour))
	pl.Take()
	var vs baseline.Versions
	v := vs.Promote(model, "end of learning period", learnEnd)
	m, err := v.ModelIn(baseline.Caps{}, cet)
	if err != nil {
		t.Fatal(err)
	}
	dev = baseline.NewDeviations(m, baseline.Config{Loc: cet})
	if err := pl.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	return pl, dev
}

func defaultPolicy(t testing.TB) *schema.Policy {
	t.Helper()
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// 7(a): after learning one quiet week, a second quiet week (same habits,
// other pids, clients, minutes and hashes) raises nothing.
func TestQuietWeekAfterLearningRaisesNothing(t *testing.T) {
	p := defaultPolicy(t)
	week1 := quietWeek(weekStart, 1)
	pl, _ := learned(t, p, week1)
	week2 := quietWeek(weekStart.AddDate(0, 0, 7), 2)
	for _, ev := range week2 {
		pl.Process(ev)
	}
	pl.Tick(week2[len(week2)-1].Time.Add(time.Hour))
	b := pl.Take()
	for _, in := range b.Incidents {
		for _, s := range in.Signals {
			t.Errorf("incident %d: %s %s: %s", in.ID, s.Stage, s.Rule, s.Reason)
		}
	}
	if len(week2) < 100_000 {
		t.Errorf("the week is too small to mean much: %d events", len(week2))
	}
}

// The same quiet week with one deviation of each kind mixed in: each is
// reported by its rule and stage, and nothing else is.
func TestQuietWeekDeviations(t *testing.T) {
	p := defaultPolicy(t)
	pl, _ := learned(t, p, quietWeek(weekStart, 1))
	at := weekStart.AddDate(0, 0, 8).Add(11 * time.Hour) // Tuesday 11:00 CET, mid-traffic
	var evs []*event.Event
	// A request flood from one new client (200/min, above the client floor
	// and making the site's minute 5x its learned peak at 11h).
	for i := range 400 {
		evs = append(evs, &event.Event{Time: at.Add(time.Duration(i) * 150 * time.Millisecond), Kind: event.WebRequest, Source: accessLog,
			Addr: mustAddr("198.18.7.7"), HTTPMethod: "GET", Path: "/search", Status: 200})
	}
	// A burst of 500s from the app.
	for i := range 40 {
		evs = append(evs, &event.Event{Time: at.Add(2*time.Minute + time.Duration(i)*time.Second), Kind: event.WebRequest, Source: accessLog,
			Addr: mustAddr("203.0.113.11"), HTTPMethod: "POST", Path: "/checkout", Status: 502})
	}
	evs = append(evs,
		&event.Event{Time: at.Add(5 * time.Minute), Kind: event.PersistChanged, User: "root", Change: &event.Change{What: "systemd_unit", Op: "added",
			Path: "/etc/systemd/system/dbus-helper.service", After: "ExecStart=/usr/local/sbin/dbus-helper"}},
		&event.Event{Time: at.Add(6 * time.Minute), Kind: event.FileChanged, Source: "fim", User: "root", Change: &event.Change{What: "file_modified", Op: "modified",
			Path: "/usr/bin/ls", After: "sha256:" + strings.Repeat("ab", 32)}},
	)
	for _, ev := range evs {
		pl.Process(ev)
	}
	b := pl.Take()
	got := map[string]signal.Stage{}
	for _, in := range b.Incidents {
		for _, s := range in.Signals {
			got[s.Rule+" "+s.Subject] = s.Stage
		}
	}
	want := map[string]signal.Stage{
		"baseline.request_rate rate:client 198.18.7.7":       signal.Recon,
		"baseline.request_rate rate:source " + accessLog:     signal.Recon,
		"baseline.error_rate errors:5xx:source " + accessLog: signal.Recon,
		"baseline.error_rate errors:5xx:client 203.0.113.11": signal.Recon,
		"baseline.new_persistence persist:systemd_unit:/etc/systemd/system/dbus-helper.service:ExecStart=/usr/local/sbin/dbus-helper": signal.Persistence,
		"baseline.file_changed file:/usr/bin/ls:" + strings.Repeat("ab", 32):                                                          signal.Persistence,
	}
	for k, st := range want {
		if got[k] != st {
			t.Errorf("missing %s (%s)", k, st)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func readEvents(t testing.TB, name string) []*event.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*event.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev event.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		evs = append(evs, &ev)
	}
	return evs
}

// 7(b): a recorded intrusion after a learned quiet week — scan, ssh login
// from a new prefix after failures, a new process under the session, a new
// cron entry, an outbound connection to a new destination — is one
// incident at lockdown with all five stages explained.
func TestMultiStageIntrusionIsOneIncident(t *testing.T) {
	p := defaultPolicy(t)
	run := func() (*correlate.Incident, correlate.Scoring, []*correlate.Incident) {
		pl, _ := learned(t, p, quietWeek(weekStart, 1))
		for _, ev := range readEvents(t, "intrusion.jsonl") {
			pl.Process(ev)
		}
		b := pl.Take()
		var with []*correlate.Incident
		for _, in := range b.Incidents {
			if len(in.Signals) > 0 && in.Status != correlate.Closed {
				with = append(with, in)
			}
		}
		if len(with) != 1 {
			for _, in := range b.Incidents {
				t.Logf("incident %d %s: %s", in.ID, in.Status, in.Summary())
			}
			t.Fatalf("want one open incident, got %d", len(with))
		}
		return with[0], pl.Scoring(with[0]), b.Incidents
	}
	in, sc, _ := run()
	if in.Level != correlate.Lockdown {
		t.Errorf("level %s (score %g), want lockdown", in.Level, in.Score)
	}
	wantStages := []signal.Stage{signal.Recon, signal.InitialAccess, signal.Execution, signal.Persistence, signal.Exfiltration}
	if !slices.Equal(in.Stages, wantStages) {
		t.Errorf("stages %v, want %v", in.Stages, wantStages)
	}
	rules := map[string]bool{}
	for _, s := range in.Signals {
		rules[s.Rule] = true
	}
	for _, r := range []string{"web.scan", "ssh.login_after_failures", baseline.RuleAuthAnomaly, baseline.RuleNewProcess,
		baseline.RuleNewPersistence, baseline.RuleNewDestination} {
		if !rules[r] {
			t.Errorf("no %s signal in %v", r, rules)
		}
	}
	var a, b bytes.Buffer
	if err := explain.Incident(&a, in, sc, p.Levels, nil, explain.Options{Evidence: 1}); err != nil {
		t.Fatal(err)
	}
	// Deterministic: the same events again render the same bytes.
	in2, sc2, _ := run()
	explain.Incident(&b, in2, sc2, p.Levels, nil, explain.Options{Evidence: 1})
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("explanation not deterministic:\n%s\n---\n%s", a.String(), b.String())
	}
	for _, st := range wantStages {
		if !strings.Contains(a.String(), " "+string(st)+" ") {
			t.Errorf("stage %s not in the story:\n%s", st, a.String())
		}
	}
	golden(t, "intrusion.explain.txt", a.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update and check the diff):\n%s", name, got)
	}
}

// The engine's and the operator's lifecycle calls change the incident and
// audit it; unknown or closed incidents are refused.
func TestPipelineLifecycleCalls(t *testing.T) {
	p := defaultPolicy(t)
	pl, err := New(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range readEvents(t, "intrusion.jsonl")[:12] { // the scan
		pl.Process(ev)
	}
	pl.Flush()
	b := pl.Take()
	if len(b.Incidents) != 1 {
		t.Fatalf("incidents %d", len(b.Incidents))
	}
	id := b.Incidents[0].ID
	at := b.Incidents[0].Updated
	if !pl.MarkContained(id, at, "block 198.51.100.66 for 1h applied") || pl.MarkContained(99, at, "x") {
		t.Fatal("MarkContained")
	}
	b = pl.Take()
	if len(b.Incidents) != 1 || b.Incidents[0].Status != correlate.Contained || len(b.Audit) != 1 ||
		!strings.Contains(b.Audit[0].Message, "contained at level observe") {
		t.Fatalf("contained batch: %+v", b)
	}
	if !pl.Close(id, at, "closed by operator") || pl.Close(id, at, "again") {
		t.Fatal("Close")
	}
	b = pl.Take()
	if len(b.Incidents) != 1 || b.Incidents[0].Status != correlate.Closed || !strings.Contains(b.Audit[0].Message, "closed by operator") {
		t.Fatalf("closed batch: %+v", b)
	}
}
