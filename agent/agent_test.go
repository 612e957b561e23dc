package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/fim"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// harness runs an Agent in-process whose auth sensor follows a temp file.
type harness struct {
	t       *testing.T
	dir     string
	authLog string
	policy  *schema.Policy
	notes   *notes
	reload  chan struct{}
	cancel  context.CancelFunc
	done    chan error
	// hands, when set, is the action engine the agent drives.
	hands *Hands
}

type notes struct {
	mu sync.Mutex
	s  []string
}

func (n *notes) Notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.s = append(n.s, s)
	return nil
}
func (n *notes) WatchdogInterval() time.Duration { return 100 * time.Millisecond }
func (n *notes) has(prefix string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.s {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func newHarness(t *testing.T) *harness {
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	p.Learning.Period = 0
	dir := t.TempDir()
	return &harness{t: t, dir: filepath.Join(dir, "state"), authLog: filepath.Join(dir, "auth.log"), policy: p, notes: &notes{}}
}

func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done, h.reload = cancel, make(chan error, 1), make(chan struct{}, 1)
	a, err := New(Config{
		Version: "test", StateDir: h.dir, Notifier: h.notes, Reload: h.reload, Actions: sinkOf(h.hands), Workers: workersOf(h.hands),
		FlushEvery: 20 * time.Millisecond, Heartbeat: 50 * time.Millisecond,
		Policy: func(context.Context) (*schema.Policy, ConfigStatus, error) {
			return h.policy, ConfigStatus{Source: "test"}, nil
		},
		Sensors: func(ctx context.Context, p *schema.Policy, pos *state.Store) ([]sensor.Sensor, []SensorStatus) {
			s := &sensor.AuthFile{Path: h.authLog, Poll: 10 * time.Millisecond}
			var start tail.Position
			if ok, _ := pos.Offset(ctx, s.Name(), &start); ok {
				s.Start = start
			}
			return []sensor.Sensor{s}, []SensorStatus{{Name: "auth", State: SensorOK}}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { h.done <- a.Run(ctx) }()
	h.waitFor("READY", func() bool { return h.notes.has("READY=1") })
}

func sinkOf(h *Hands) ActionSink {
	if h == nil {
		return nil
	}
	return h
}

func workersOf(h *Hands) []func(context.Context) error {
	if h == nil {
		return nil
	}
	return []func(context.Context) error{h.Run}
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("agent did not stop")
	}
}

func (h *harness) appendLines(lines ...string) {
	f, err := os.OpenFile(h.authLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
	f.Close()
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) incidents() []correlate.Incident {
	st, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		return nil
	}
	defer st.Close()
	rows, _ := st.Incidents(context.Background(), state.IncidentFilter{})
	var out []correlate.Incident
	for _, r := range rows {
		var in correlate.Incident
		json.Unmarshal(r.Doc, &in)
		out = append(out, in)
	}
	return out
}

func failures(ip string, n int, from time.Time) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s host sshd[9]: Failed password for root from %s port 2222 ssh2",
			from.Add(time.Duration(i)*time.Second).Format(time.Stamp), ip))
	}
	return out
}

func TestAgentDetectsAndSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	h.appendLines("old line before the agent ever ran: skipped, the sensor starts at the end")
	h.start()
	now := time.Now()
	// Give the follower a moment to open the file at its end.
	time.Sleep(100 * time.Millisecond)
	h.appendLines(failures("192.0.2.10", 6, now)...)
	h.waitFor("incident for 192.0.2.10", func() bool { return len(h.incidents()) == 1 })
	if !h.notes.has("WATCHDOG=1") {
		h.waitFor("watchdog ping", func() bool { return h.notes.has("WATCHDOG=1") })
	}
	h.stop()

	// Written while the agent is down: read on restart, nothing re-read.
	h.appendLines(failures("192.0.2.20", 5, now.Add(time.Minute))...)
	h.start()
	h.waitFor("incident for 192.0.2.20", func() bool { return len(h.incidents()) == 2 })
	time.Sleep(200 * time.Millisecond)
	h.stop()

	incs := h.incidents()
	seen := map[string]int{}
	for _, in := range incs {
		for _, e := range in.Entities {
			seen[e.Value]++
		}
		if in.Level != correlate.Contain {
			t.Errorf("incident %d level %s, want contain", in.ID, in.Level)
		}
	}
	if seen["192.0.2.10"] != 1 || seen["192.0.2.20"] != 1 || len(incs) != 2 {
		t.Fatalf("incidents by ip %v (%d incidents): want one each", seen, len(incs))
	}
	// 192.0.2.10's first incident still says 6 (its lines were not re-read).
	for _, in := range incs {
		if in.Entities[0].Value == "192.0.2.10" && !strings.HasPrefix(in.Signals[len(in.Signals)-1].Reason, "6 failed") {
			t.Errorf("192.0.2.10: %q", in.Signals[len(in.Signals)-1].Reason)
		}
	}

	st, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	st.EachAudit(context.Background(), state.AuditFilter{}, func(e audit.Entry) error { kinds[e.Kind]++; return nil })
	if kinds[audit.KindAgentStart] != 2 || kinds[audit.KindAgentStop] != 2 || kinds[audit.KindPlan] != 2 || kinds[audit.KindIncident] < 2 {
		t.Errorf("audit kinds %v over %d entries", kinds, n)
	}
	var status Status
	if ok, _ := st.MetaJSON(context.Background(), MetaStatus, &status); !ok || status.State != "stopped" {
		t.Errorf("status after stop: %+v", status)
	}
}

func TestLearningSuppressesPlans(t *testing.T) {
	h := newHarness(t)
	h.policy.Learning.Period = schema.Duration(48 * time.Hour)
	h.start()
	time.Sleep(100 * time.Millisecond)
	h.appendLines(failures("192.0.2.30", 5, time.Now())...)
	h.waitFor("incident", func() bool { return len(h.incidents()) == 1 })
	h.stop()
	st, _ := state.OpenReadOnly(context.Background(), h.dir)
	defer st.Close()
	plans, err := st.Plans(context.Background(), 0)
	if err != nil || len(plans) != 1 || plans[0].Status != "suppressed-learning" {
		t.Fatalf("plans %+v, %v: want one suppressed-learning plan", plans, err)
	}
	var status Status
	st.MetaJSON(context.Background(), MetaStatus, &status)
	if !status.Learning.Active || status.Learning.Period != "48h0m0s" {
		t.Errorf("learning status %+v", status.Learning)
	}
}

func TestReloadAppliesAndRejects(t *testing.T) {
	h := newHarness(t)
	h.start()
	countKind := func(kind string) int {
		st, err := state.OpenReadOnly(context.Background(), h.dir)
		if err != nil {
			return 0
		}
		defer st.Close()
		n := 0
		st.EachAudit(context.Background(), state.AuditFilter{Kind: kind}, func(audit.Entry) error { n++; return nil })
		return n
	}
	h.reload <- struct{}{}
	h.waitFor("second config.applied", func() bool { return countKind(audit.KindConfigApplied) == 2 })
	bad := *h.policy
	bad.Whitelist.AdminIPs = map[string]schema.WhitelistIP{"x": {CIDR: "not-an-ip"}}
	good := h.policy
	h.policy = &bad
	h.reload <- struct{}{}
	h.waitFor("config.rejected", func() bool { return countKind(audit.KindConfigRejected) == 1 })
	h.policy = good
	h.stop()
}

// fakeScan is a sensor whose first pass runs for a few polls.
type fakeScan struct {
	mu    sync.Mutex
	calls int
}

func (f *fakeScan) Name() string                                        { return "files" }
func (f *fakeScan) Run(ctx context.Context, _ chan<- sensor.Item) error { <-ctx.Done(); return nil }
func (f *fakeScan) Progress() fim.Progress {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls < 4 {
		return fim.Progress{Running: true, Files: int64(f.calls * 100), TotalFiles: 400, Bytes: int64(f.calls) << 20, TotalBytes: 4 << 20}
	}
	return fim.Progress{Done: true, Files: 400, Bytes: 4 << 20}
}

func TestProgressBarOnTerminal(t *testing.T) {
	var buf syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	showProgress(ctx, &buf, []sensor.Sensor{&fakeScan{}})
	out := buf.String()
	if strings.Count(out, "\r") < 3 || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "files") {
		t.Fatalf("progress output %q", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBaselinePromotedAfterLearning: what the agent sees during the
// learning period becomes baseline version 1 (audited); after it, a login
// from a prefix the user never came from is a deviation.
func TestBaselinePromotedAfterLearning(t *testing.T) {
	h := newHarness(t)
	h.policy.Learning.Period = schema.Duration(600 * time.Millisecond)
	h.start()
	time.Sleep(100 * time.Millisecond)
	now := time.Now()
	login := func(ip string, at time.Time) string {
		return fmt.Sprintf("%s host sshd[7]: Accepted password for alice from %s port 2200 ssh2", at.Format(time.Stamp), ip)
	}
	h.appendLines(login("192.0.2.50", now), login("192.0.2.51", now))
	versions := func() []baseline.Version {
		st, err := state.OpenReadOnly(context.Background(), h.dir)
		if err != nil {
			return nil
		}
		defer st.Close()
		var vs []baseline.Version
		st.MetaJSON(context.Background(), MetaBaselines, &vs)
		return vs
	}
	h.waitFor("baseline version 1", func() bool { return len(versions()) == 1 })
	// A login from a new prefix, after promotion.
	h.appendLines(login("198.51.100.9", time.Now()))
	h.waitFor("deviation incident", func() bool {
		for _, in := range h.incidents() {
			for _, s := range in.Signals {
				if s.Rule == baseline.RuleAuthAnomaly && strings.Contains(s.Reason, "198.51.100") {
					return true
				}
			}
		}
		return false
	})
	h.stop()
	// The known prefix raised nothing.
	for _, in := range h.incidents() {
		for _, s := range in.Signals {
			if strings.Contains(s.Reason, "192.0.2.5") && s.Rule == baseline.RuleAuthAnomaly {
				t.Errorf("a learned login was flagged: %s", s.Reason)
			}
		}
	}
	st, _ := state.OpenReadOnly(context.Background(), h.dir)
	defer st.Close()
	var msgs []string
	st.EachAudit(context.Background(), state.AuditFilter{Kind: audit.KindBaseline}, func(e audit.Entry) error { msgs = append(msgs, e.Message); return nil })
	if len(msgs) != 1 || !strings.Contains(msgs[0], "baseline version 1 promoted (end of learning period)") {
		t.Errorf("baseline audit: %q", msgs)
	}
}
