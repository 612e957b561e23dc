package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// driftRig drives a runner the way Run does (handle, commit, the
// heartbeat's ticks) but with the clock of a recorded event stream, so
// days pass in milliseconds.
type driftRig struct {
	t      *testing.T
	dir    string
	policy *schema.Policy
	st     *state.Store
	r      *runner
}

func newDriftRig(t *testing.T, p *schema.Policy) *driftRig {
	g := &driftRig{t: t, dir: filepath.Join(t.TempDir(), "state"), policy: p}
	g.open()
	t.Cleanup(func() {
		if g.st != nil {
			g.st.Close()
		}
	})
	return g
}

func (g *driftRig) open() {
	g.t.Helper()
	ctx := context.Background()
	st, err := state.Open(ctx, g.dir)
	if err != nil {
		g.t.Fatal(err)
	}
	a, err := New(Config{Version: "test", StateDir: g.dir, Policy: func(context.Context) (*schema.Policy, ConfigStatus, error) {
		return g.policy, ConfigStatus{Source: "test"}, nil
	}, Sensors: func(context.Context, *schema.Policy, *state.Store) ([]sensor.Sensor, []SensorStatus) { return nil, nil }})
	if err != nil {
		g.t.Fatal(err)
	}
	g.st, g.r = st, &runner{a: a, st: st, policy: g.policy, pending: map[string]any{}}
	if err := g.r.start(ctx, ConfigStatus{Source: "test"}); err != nil {
		g.t.Fatal(err)
	}
}

// restart stops the runner as Run does at shutdown (commit, close) and
// starts a new one on the same state.
func (g *driftRig) restart() {
	g.t.Helper()
	if err := g.r.commit(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	g.st.Close()
	g.open()
}

// feed handles events and commits; it returns the signals they raised.
func (g *driftRig) feed(evs ...*event.Event) int64 {
	g.t.Helper()
	before := g.r.counters.Signals
	for _, ev := range evs {
		g.r.handle(sensor.Item{Event: ev})
	}
	if err := g.r.commit(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	return g.r.counters.Signals - before
}

// beat is the heartbeat's baseline part at now.
func (g *driftRig) beat(now time.Time) {
	g.t.Helper()
	ctx := context.Background()
	if err := g.r.learningTick(ctx, now); err != nil {
		g.t.Fatal(err)
	}
	if err := g.r.relearnTick(ctx, now); err != nil {
		g.t.Fatal(err)
	}
	if err := g.r.driftTick(ctx, now); err != nil {
		g.t.Fatal(err)
	}
	g.r.pl.Tick(now)
	if err := g.r.commit(ctx); err != nil {
		g.t.Fatal(err)
	}
}

func (g *driftRig) audit(substr string) []string {
	var out []string
	g.st.EachAudit(context.Background(), state.AuditFilter{}, func(e audit.Entry) error {
		if strings.Contains(e.Message, substr) {
			out = append(out, e.Message)
		}
		return nil
	})
	return out
}

// at is hour h of day d of the recorded stream, host local time.
func at(d, h int) time.Time { return time.Date(2026, 3, 1+d, h, 0, 0, 0, time.Local) }

func cronRuns(t time.Time, pid int, exe string) *event.Event {
	return &event.Event{Time: t, Kind: event.ProcExec, Proc: &event.Process{PID: pid, PPID: 900, User: "root", Comm: filepath.Base(exe),
		Exe: exe, Lineage: []event.Ancestor{{PID: 900, Comm: "cron", Exe: "/usr/sbin/cron"}}}}
}

// versionOne promotes what two quiet days taught: cron runs logrotate.
func (g *driftRig) versionOne() {
	g.t.Helper()
	m := baseline.NewModel(baseline.DefaultCaps())
	m.Learn(cronRuns(at(-1, 3), 100, "/usr/sbin/logrotate"))
	m.Learn(cronRuns(at(0, 3), 101, "/usr/sbin/logrotate"))
	if _, err := g.r.promote(context.Background(), m, "end of learning period", at(0, 6)); err != nil {
		g.t.Fatal(err)
	}
}

const backup = "/usr/local/bin/backup"

// TestDriftLearnsDailyCronJob drives a recorded stream through the
// runner: a cron job added after promotion runs daily at 03:00. Each case
// lists the signals each day raises and the day whose 06:00 heartbeat
// promotes the drift version (every = 24h from version 1 at day 0 06:00).
func TestDriftLearnsDailyCronJob(t *testing.T) {
	for _, c := range []struct {
		name     string
		disabled bool
		window   time.Duration
		// incident: an open incident of another rule involves the
		// backup executable from day 0 until closeDay 12:00.
		incident bool
		closeDay int
		restart  int  // restart the agent after this day
		relearn  bool // a 72h relearn requested at day 0
		signals  []int64
		promote  int // 0: no drift version
		days     int // the days the key is promoted with
	}{
		{name: "folded on day 3, promoted at the next every", signals: []int64{2, 1, 1, 0}, promote: 3, days: 3},
		{name: "disabled", disabled: true, signals: []int64{2, 1, 1, 1, 1}},
		{name: "restart keeps the day counts", restart: 2, signals: []int64{2, 1, 1, 0}, promote: 3, days: 3},
		{name: "never while an incident involving the exe is open", window: 240 * time.Hour, incident: true, closeDay: 5,
			signals: []int64{2, 1, 1, 1, 1, 1, 0}, promote: 6, days: 6},
		{name: "not during a relearn", relearn: true, signals: []int64{2, 1, 1, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := schema.Default()
			if err != nil {
				t.Fatal(err)
			}
			p.Learning.Period = 0
			p.Learning.Drift = schema.Drift{Enabled: !c.disabled, MinDays: 3, Every: schema.Duration(24 * time.Hour)}
			if c.window > 0 {
				p.Correlation.Window = schema.Duration(c.window)
			}
			g := newDriftRig(t, p)
			g.versionOne()
			g.beat(at(0, 6))
			if c.incident {
				ev := cronRuns(at(0, 7), 3999, backup)
				g.r.pl.Restore(&correlate.Incident{ID: 500, Opened: at(0, 7), Updated: at(0, 7), Status: correlate.Open,
					Level: correlate.Observe, Entities: []signal.Entity{{Kind: signal.Process, Value: "3999"}},
					Signals: []signal.Signal{{Time: at(0, 7), Rule: "process.exec_deleted", Stage: signal.Execution, Weight: 20,
						Entities: []signal.Entity{{Kind: signal.Process, Value: "3999"}}, Evidence: []event.Event{*ev}}}})
			}
			if c.relearn {
				if _, err := RequestRelearn(context.Background(), g.st, 72*time.Hour, "test", at(0, 6)); err != nil {
					t.Fatal(err)
				}
				g.beat(at(0, 6).Add(time.Second))
			}
			for i, want := range c.signals {
				d := i + 1
				evs := []*event.Event{cronRuns(at(d, 3), 4000+d, backup)}
				if d == 1 {
					evs = append(evs, &event.Event{Time: at(d, 2), Kind: event.PersistChanged, User: "root", Change: &event.Change{
						What: "cron_line", Op: "added", Path: "/etc/cron.d/backup", After: "0 3 * * * root " + backup}})
				}
				if got := g.feed(evs...); got != want {
					t.Errorf("day %d: %d signals, want %d", d, got, want)
				}
				for _, h := range []int{3, 4, 6, 12} {
					g.beat(at(d, h))
					if d == c.closeDay && h == 12 && !g.r.pl.Close(500, at(d, h), "closed by the operator") {
						t.Fatal("incident 500 was not open")
					}
				}
				vs := g.r.versions.All()
				wantN := 1
				if c.promote > 0 && d >= c.promote {
					wantN = 2
				}
				if c.relearn && d >= 3 {
					wantN = 2
				}
				if len(vs) != wantN {
					t.Fatalf("day %d: %d versions, want %d", d, len(vs), wantN)
				}
				if d == c.restart {
					g.restart()
				}
			}
			vs := g.r.versions.All()
			drift := g.audit("(drift) adds")
			switch {
			case c.relearn:
				if vs[1].Reason != "relearn" || len(drift) > 0 {
					t.Errorf("version 2 %q, drift entries %q", vs[1].Reason, drift)
				}
			case c.promote == 0:
				if len(drift) > 0 {
					t.Errorf("drift entries %q", drift)
				}
			default:
				if vs[1].Reason != "drift" || !strings.Contains(string(vs[1].Kinds[baseline.KindProcess]), backup) {
					t.Errorf("version 2 (%s):\n%s", vs[1].Reason, vs[1].Kinds[baseline.KindProcess])
				}
				want := fmt.Sprintf("baseline version 2 (drift) adds 1 keys reported as new on at least 3 distinct days with no open incident involving them: process: /usr/sbin/cron → %s as root (%d days)", backup, c.days)
				if len(drift) != 1 || drift[0] != want {
					t.Errorf("drift audit %q\nwant %q", drift, want)
				}
				if got := g.audit("baseline version 2 promoted (drift)"); len(got) != 1 {
					t.Errorf("promotion audit %q", got)
				}
			}
			// The one-day persistence entry is still only a candidate (the
			// sensor reported it once); nothing is pending.
			var s baseline.DriftState
			saved, err := g.st.MetaJSON(context.Background(), MetaDrift, &s)
			if err != nil {
				t.Fatal(err)
			}
			if c.disabled {
				if saved {
					t.Errorf("disabled drift saved a state: %+v", s)
				}
				return
			}
			wantCands := 1
			if c.relearn {
				wantCands = 0
			}
			if len(s.Candidates) != wantCands || len(s.Pending) != 0 || s.Version != len(vs) {
				b, _ := json.Marshal(s)
				t.Errorf("saved drift state: %s", b)
			}
		})
	}
}
