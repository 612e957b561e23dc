package baseline

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

var driftUTC = DriftConfig{Enabled: true, Loc: time.UTC}

// after is the first day after normalWeek, at noon.
var after = t0.Add(8*24*time.Hour + 3*time.Hour)

func activeDrift(c DriftConfig) *Drift {
	d := NewDrift(c)
	d.SetActive(true)
	return d
}

func persist(at time.Time, user, what, path, after string) *event.Event {
	return &event.Event{Time: at, Kind: event.PersistChanged, User: user,
		Change: &event.Change{What: what, Op: "added", Path: path, After: after}}
}

func fileChange(at time.Time, path, sha string) *event.Event {
	return &event.Event{Time: at, Kind: event.FileChanged, Change: &event.Change{What: whatFileChanged, Op: "modified", Path: path, After: hashPrefix + sha}}
}

func requests(at time.Time, n int, src, client string) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = &event.Event{Time: at, Kind: event.WebRequest, Source: src, Addr: netip.MustParseAddr(client), Status: 200}
	}
	return evs
}

// Each kind the deviation rules report: reported on days 1 and 2, folded
// on day 3, and silent once the folded model is promoted.
func TestDriftFoldsEachKind(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name string
		evs  func(day time.Time, i int) []*event.Event
		want string // the folded key
	}{
		{"process", func(day time.Time, i int) []*event.Event {
			return []*event.Event{exec(day, 5000+i, "root", 0, "/usr/local/bin/report", "/usr/sbin/cron", 900)}
		}, "process: /usr/sbin/cron → /usr/local/bin/report as root (3 days)"},
		{"outbound", func(day time.Time, i int) []*event.Event {
			return []*event.Event{connect(day, 5000+i, "/usr/sbin/php-fpm8.2", fmt.Sprintf("198.18.7.%d", 10+i), 443, "tcp")}
		}, "outbound: /usr/sbin/php-fpm8.2 → 198.18.7.0/24 port 443/tcp (3 days)"},
		{"listener", func(day time.Time, i int) []*event.Event {
			return []*event.Event{listen(day, 5000+i, "/usr/sbin/nginx", 8443, "tcp")}
		}, "listener: /usr/sbin/nginx listens on 8443/tcp (3 days)"},
		{"login from a new prefix", func(day time.Time, i int) []*event.Event {
			return []*event.Event{login(day.Add(-2*time.Hour), "alice", "198.18.9.4", "publickey")}
		}, "auth: alice from 198.18.9.0/24 by publickey (3 days)"},
		{"persistence", func(day time.Time, i int) []*event.Event {
			return []*event.Event{persist(day, "deploy", "cron_line", "/etc/cron.d/app", "0 4 * * * app /opt/app/rotate")}
		}, "persistence: cron_line /etc/cron.d/app: 0 4 * * * app /opt/app/rotate (3 days)"},
		{"file", func(day time.Time, i int) []*event.Event {
			return []*event.Event{fileChange(day, "/usr/local/lib/app.so", sha)}
		}, "files: /usr/local/lib/app.so sha256:" + sha + " (3 days)"},
		{"web source peak", func(day time.Time, i int) []*event.Event {
			var evs []*event.Event
			for j := range 5 {
				evs = append(evs, requests(day, 40, "file:/var/log/nginx/access.log", fmt.Sprintf("198.18.5.%d", j))...)
			}
			return evs
		}, "web: source file:/var/log/nginx/access.log peak 200/min at 12h (3 days)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := learnt(t)
			cfg := utc
			cfg.SystemDirs = []string{"/usr"}
			det := NewDeviations(m, cfg)
			d := activeDrift(driftUTC)
			det.RecordDrift(d)
			var folded []DriftCandidate
			for i := range 3 {
				day := after.Add(time.Duration(i) * 24 * time.Hour)
				if got := observe(det, c.evs(day, i)...); len(got) == 0 {
					t.Fatalf("day %d: nothing reported", i+1)
				}
				folded = d.Fold(day.Add(time.Hour), nil)
				if i < 2 && len(folded) > 0 {
					t.Fatalf("day %d: folded early: %v", i+1, folded)
				}
			}
			var names []string
			for _, f := range folded {
				names = append(names, f.String())
			}
			if !strings.Contains(strings.Join(names, "\n"), c.want) {
				t.Fatalf("folded on day 3:\n%s\nwant %s", strings.Join(names, "\n"), c.want)
			}
			v1, err := Version{Kinds: m.Snapshot().Kinds()}.ModelIn(Caps{}, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Apply(v1); len(got) != len(folded) {
				t.Fatalf("applied %d, folded %d", len(got), len(folded))
			}
			next := NewDeviations(v1, cfg)
			day4 := after.Add(3 * 24 * time.Hour)
			if got := observe(next, c.evs(day4, 3)...); len(got) > 0 {
				t.Errorf("day 4 after the drift version: %s", got[0].Reason)
			}
		})
	}
}

// Days, not occurrences: many reports in one day count once; a gap of
// more than two weeks starts over; an inactive learner records nothing.
func TestDriftCountsDays(t *testing.T) {
	det := NewDeviations(learnt(t), utc)
	d := NewDrift(driftUTC)
	det.RecordDrift(d)
	ev := func(at time.Time) *event.Event { return exec(at, 7000, "root", 0, "/opt/x", "/usr/sbin/cron", 900) }
	observe(det, ev(after))
	if c, _ := d.Len(); c != 0 {
		t.Fatal("inactive learner recorded")
	}
	d.SetActive(true)
	for h := range 10 {
		observe(det, ev(after.Add(time.Duration(h)*time.Minute)))
	}
	observe(det, ev(after.Add(24*time.Hour)))
	if f := d.Fold(after.Add(25*time.Hour), nil); len(f) > 0 {
		t.Fatalf("folded after 2 days: %v", f)
	}
	// Day 3 comes 20 days later: the count starts over at 1.
	observe(det, ev(after.Add(21*24*time.Hour)))
	observe(det, ev(after.Add(22*24*time.Hour)))
	if f := d.Fold(after.Add(22*24*time.Hour), nil); len(f) > 0 {
		t.Fatalf("folded across a stale gap: %v", f)
	}
	observe(det, ev(after.Add(23*24*time.Hour)))
	f := d.Fold(after.Add(23*24*time.Hour), nil)
	if len(f) != 1 || f[0].Days != 3 || f[0].Count != 3 {
		t.Fatalf("folded %+v", f)
	}
	// A key not reported for longer than the gap is forgotten.
	observe(det, exec(after, 7001, "root", 0, "/opt/y", "/usr/sbin/cron", 900))
	d.Fold(after.Add(30*24*time.Hour), nil)
	if c, p := d.Len(); c != 0 || p != 1 {
		t.Errorf("candidates %d pending %d, want 0 and 1", c, p)
	}
}

// incident builds an open incident from signals.
func incident(level correlate.Level, status correlate.Status, sigs ...signal.Signal) *correlate.Incident {
	in := &correlate.Incident{ID: 1, Level: level, Status: status, Signals: sigs}
	for _, s := range sigs {
		in.Entities = append(in.Entities, s.Entities...)
	}
	return in
}

// Which open incidents hold a ready candidate back.
func TestDriftBlockedByOpenIncidents(t *testing.T) {
	report := exec(after, 5000, "backup", 34, "/usr/local/bin/backup", "/usr/sbin/cron", 900)
	dest := connect(after, 5000, "/usr/local/bin/backup", "198.18.3.7", 873, "tcp")
	own := signal.Signal{Rule: RuleNewProcess, Evidence: []event.Event{*report},
		Entities: []signal.Entity{{Kind: signal.Process, Value: "5000"}, {Kind: signal.User, Value: "backup"}}}
	shellUnder := *exec(after, 5100, "backup", 34, "/usr/bin/sh", "/usr/local/bin/backup", 5000)
	other := signal.Signal{Rule: "process.web_child", Evidence: []event.Event{shellUnder},
		Entities: []signal.Entity{{Kind: signal.Process, Value: "5100"}}}
	both := []string{DriftOutbound, DriftProcess}
	for _, c := range []struct {
		name string
		in   *correlate.Incident
		want []string // kinds folded while the incident is open
	}{
		{"none", nil, both},
		{"only its own reports, observe", incident(correlate.Observe, correlate.Open, own), both},
		{"its own reports, escalated to contain", incident(correlate.Contain, correlate.Escalated, own), nil},
		{"its own reports, contained", incident(correlate.Observe, correlate.Contained, own), nil},
		{"another rule, its exe an ancestor", incident(correlate.Observe, correlate.Open, other), nil},
		{"another rule naming its user", incident(correlate.Observe, correlate.Open, signal.Signal{Rule: "ssh.bruteforce",
			Entities: []signal.Entity{{Kind: signal.User, Value: "backup"}}}), []string{DriftOutbound}},
		{"another rule naming an address of its destination prefix", incident(correlate.Observe, correlate.Open, signal.Signal{Rule: "ssh.bruteforce",
			Entities: []signal.Entity{{Kind: signal.IP, Value: "198.18.3.200"}}}), []string{DriftProcess}},
		{"a deviation that is no candidate", incident(correlate.Observe, correlate.Open, signal.Signal{Rule: RuleNewListener,
			Evidence: []event.Event{*listen(after, 5000, "/usr/local/bin/backup", 9000, "tcp")}}), nil},
		{"unrelated", incident(correlate.Contain, correlate.Open, signal.Signal{Rule: "ssh.bruteforce",
			Entities: []signal.Entity{{Kind: signal.IP, Value: "198.51.100.1"}, {Kind: signal.User, Value: "root"}}}), both},
	} {
		t.Run(c.name, func(t *testing.T) {
			det := NewDeviations(learnt(t), utc)
			d := activeDrift(driftUTC)
			det.RecordDrift(d)
			for i := range 3 {
				day := time.Duration(i) * 24 * time.Hour
				r, n := *report, *dest
				r.Time, n.Time = r.Time.Add(day), n.Time.Add(day)
				if len(observe(det, &r, &n)) != 2 {
					t.Fatal("want two reports a day")
				}
			}
			var open []*correlate.Incident
			if c.in != nil {
				open = append(open, c.in)
			}
			var kinds []string
			for _, f := range d.Fold(after.Add(3*24*time.Hour), open) {
				kinds = append(kinds, f.Kind)
			}
			if !slices.Equal(kinds, c.want) {
				t.Fatalf("folded %v, want %v", kinds, c.want)
			}
			// Once the incident is gone, the rest folds.
			if rest := d.Fold(after.Add(3*24*time.Hour), nil); len(rest)+len(kinds) != 2 {
				t.Errorf("after the incident closed: %v", rest)
			}
		})
	}
}

// A flood of one-day keys cannot evict a key seen on two days, and the
// candidates stay within the cap.
func TestDriftBoundedUnderChurn(t *testing.T) {
	det := NewDeviations(learnt(t), utc)
	c := driftUTC
	c.Cap = 100
	d := activeDrift(c)
	det.RecordDrift(d)
	keep := func(at time.Time) *event.Event { return exec(at, 1, "root", 0, "/opt/keep", "/usr/sbin/cron", 900) }
	observe(det, keep(after))
	observe(det, keep(after.Add(24*time.Hour)))
	for i := range 10000 {
		observe(det, exec(after.Add(24*time.Hour), 2, "root", 0, fmt.Sprintf("/tmp/x%d", i), "/usr/sbin/cron", 900))
		if n, _ := d.Len(); n > 100 {
			t.Fatalf("%d candidates past a cap of 100", n)
		}
	}
	observe(det, keep(after.Add(48*time.Hour)))
	f := d.Fold(after.Add(48*time.Hour), nil)
	if len(f) != 1 || f[0].Exe != "/opt/keep" {
		t.Fatalf("folded %v", f)
	}
	if d.State().Evicted < 9000 {
		t.Errorf("evicted %d", d.State().Evicted)
	}
}

// The next promotion keeps its time of day; nothing pending, nothing due.
func TestDriftDue(t *testing.T) {
	d := activeDrift(DriftConfig{Enabled: true, Every: 24 * time.Hour, Loc: time.UTC})
	v1 := t0
	d.Reset(1, v1)
	if d.Due(v1.Add(23 * time.Hour)) {
		t.Fatal("due before every")
	}
	if d.Due(v1.Add(50 * time.Hour)) {
		t.Fatal("due with nothing pending")
	}
	if got := d.State().Next; !got.Equal(v1.Add(72 * time.Hour)) {
		t.Fatalf("next %v, want %v", got, v1.Add(72*time.Hour))
	}
	det := NewDeviations(learnt(t), utc)
	det.RecordDrift(d)
	for i := range 3 {
		observe(det, exec(after.Add(time.Duration(i)*24*time.Hour), 1, "root", 0, "/opt/z", "/usr/sbin/cron", 900))
	}
	d.Fold(after.Add(72*time.Hour), nil)
	if !d.Due(v1.Add(72 * time.Hour)) {
		t.Fatal("not due with something pending")
	}
	d.Promoted(2, v1.Add(72*time.Hour))
	if _, p := d.Len(); p != 0 || d.Version() != 2 || d.Due(v1.Add(80*time.Hour)) {
		t.Fatal("promotion not recorded")
	}
}

func weekModel() *Model {
	m := NewModelIn(Caps{}, time.UTC)
	for _, ev := range normalWeek() {
		m.Learn(ev)
	}
	return m
}

func driftState() DriftState {
	det := NewDeviations(weekModel(), utc)
	d := activeDrift(driftUTC)
	det.RecordDrift(d)
	d.Reset(1, t0)
	for i := range 3 {
		day := after.Add(time.Duration(i) * 24 * time.Hour)
		observe(det, exec(day, 1, "root", 0, "/opt/a", "/usr/sbin/cron", 900),
			login(day, "carol", "198.18.4.4", "password"),
			persist(day, "root", "cron_line", "/etc/cron.d/b", "* * * * * root /opt/b"))
		if i == 1 {
			observe(det, connect(day, 1, "/opt/a", "198.18.0.9", 22, "tcp"))
		}
	}
	d.Fold(after.Add(3*24*time.Hour), []*correlate.Incident{incident(correlate.Observe, correlate.Open,
		signal.Signal{Rule: "x", Entities: []signal.Entity{{Kind: signal.User, Value: "carol"}}})})
	return d.State()
}

// The state survives JSON byte for byte, keeps its counts, and edited
// states are rejected.
func TestDriftStateRoundTrip(t *testing.T) {
	s := driftState()
	if len(s.Pending) == 0 || len(s.Candidates) == 0 {
		t.Fatalf("state without pending or candidates: %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var s2 DriftState
	if err := json.Unmarshal(b, &s2); err != nil {
		t.Fatal(err)
	}
	d, err := RestoreDrift(s2, driftUTC)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(d.State())
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
	for _, c := range []struct {
		name string
		edit func(*DriftState)
	}{
		{"zero days", func(s *DriftState) { s.Candidates[0].Days = 0 }},
		{"bad day", func(s *DriftState) { s.Candidates[0].LastDay = "yesterday" }},
		{"unknown kind", func(s *DriftState) { s.Candidates[0].Kind = "mood" }},
		{"hour 24", func(s *DriftState) { s.Candidates[0].Hour = 24 }},
		{"prefix with host bits", func(s *DriftState) { s.Pending[0].Prefix = "198.18.0.1/24" }},
		{"invalid utf-8", func(s *DriftState) { s.Pending[0].User = "\xff" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e DriftState
			json.Unmarshal(b, &e)
			c.edit(&e)
			if _, err := RestoreDrift(e, driftUTC); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func FuzzRestoreDrift(f *testing.F) {
	b, _ := json.Marshal(driftState())
	f.Add(b)
	f.Add([]byte(`{"candidates":[{"kind":"web_client","web":"x","hour":23,"days":9,"last_day":"2026-01-01","count":1,"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s DriftState
		if json.Unmarshal(data, &s) != nil {
			return
		}
		d, err := RestoreDrift(s, DriftConfig{Cap: 50, Loc: time.UTC})
		if err != nil {
			return
		}
		// A restored state folds and applies without panicking, and
		// survives its own round trip.
		d.SetActive(true)
		d.Fold(t0, nil)
		d.Apply(NewModelIn(Caps{}, time.UTC))
		b1, _ := json.Marshal(d.State())
		var s2 DriftState
		if err := json.Unmarshal(b1, &s2); err != nil {
			t.Fatal(err)
		}
		d2, err := RestoreDrift(s2, DriftConfig{Cap: 50, Loc: time.UTC})
		if err != nil {
			t.Fatalf("own state rejected: %v\n%s", err, b1)
		}
		if b2, _ := json.Marshal(d2.State()); string(b1) != string(b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b1, b2)
		}
	})
}

// A key an operator's verdict distrusts is reported as new again, but
// drift does not count it: it would learn back what the verdict took out.
func TestDriftSkipsDistrustedKeys(t *testing.T) {
	cfg := utc
	cfg.Distrusted = func(key string) bool { return strings.Contains(key, "/usr/local/bin/backup") }
	det := NewDeviations(learnt(t), cfg)
	d := activeDrift(driftUTC)
	det.RecordDrift(d)
	for i := range 3 {
		day := after.Add(time.Duration(i) * 24 * time.Hour)
		if got := observe(det, exec(day, 200, "root", 0, "/usr/local/bin/backup", "/usr/sbin/cron", 900)); len(got) != 1 {
			t.Fatalf("day %d: distrusted key not reported", i+1)
		}
	}
	if c, p := d.Len(); c != 0 || p != 0 {
		t.Errorf("distrusted key counted: %d candidates, %d pending", c, p)
	}
}

// BenchmarkDriftObserve: a deviation report recorded for drift (a new
// key each time, past the cap: eviction included).
func BenchmarkDriftObserve(b *testing.B) {
	det := NewDeviations(weekModel(), utc)
	d := activeDrift(driftUTC)
	det.RecordDrift(d)
	evs := make([]*event.Event, 20000)
	for i := range evs {
		evs[i] = exec(after.Add(time.Duration(i)*time.Second), i, "root", 0, fmt.Sprintf("/opt/bin/x%d", i), "/usr/sbin/cron", 900)
	}
	emit := func(signal.Signal) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		det.Observe(evs[i%len(evs)], emit)
	}
}

// BenchmarkDriftFold: one fold pass over a full candidate table (all
// ready) against 1,000 open incidents.
func BenchmarkDriftFold(b *testing.B) {
	det := NewDeviations(weekModel(), utc)
	var open []*correlate.Incident
	for i := range 1000 {
		ev := exec(after, 10+i, "u", 1000, fmt.Sprintf("/srv/app%d", i), "/usr/sbin/cron", 900)
		open = append(open, incident(correlate.Contain, correlate.Open, signal.Signal{Rule: "x", Evidence: []event.Event{*ev},
			Entities: []signal.Entity{{Kind: signal.IP, Value: fmt.Sprintf("198.19.%d.%d", i/250, i%250)}}}))
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := activeDrift(driftUTC)
		det.RecordDrift(d)
		for day := range 3 {
			for k := range DefaultDriftCap {
				observe(det, exec(after.Add(time.Duration(day)*24*time.Hour), k, "root", 0, fmt.Sprintf("/opt/bin/x%d", k), "/usr/sbin/cron", 900))
			}
		}
		b.StartTimer()
		if f := d.Fold(after.Add(72*time.Hour), open); len(f) != DefaultDriftCap {
			b.Fatalf("folded %d", len(f))
		}
	}
}

// BenchmarkDriftMemory reports the heap a full candidate table holds.
func BenchmarkDriftMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		det := NewDeviations(weekModel(), utc)
		var before, after2 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := activeDrift(driftUTC)
		det.RecordDrift(d)
		for k := range DefaultDriftCap {
			observe(det, connect(after, k, fmt.Sprintf("/opt/bin/client-%d", k), fmt.Sprintf("198.18.%d.%d", k/250, k%250+1), 443, "tcp"))
		}
		runtime.GC()
		runtime.ReadMemStats(&after2)
		b.ReportMetric(float64(after2.HeapAlloc-before.HeapAlloc)/(1<<20), "MB/5000keys")
		runtime.KeepAlive(d)
		runtime.KeepAlive(det)
	}
}
