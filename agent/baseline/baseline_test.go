package baseline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// utc is the detector config of the tests: hours in UTC, defaults otherwise.
var utc = Config{Loc: time.UTC}

func exec(at time.Time, pid int, user string, uid int, exe, parentExe string, ppid int) *event.Event {
	return &event.Event{Time: at, Kind: event.ProcExec, Proc: &event.Process{PID: pid, PPID: ppid, UID: uid, User: user,
		Comm: base(exe), Exe: exe, Lineage: []event.Ancestor{{PID: ppid, Comm: base(parentExe), Exe: parentExe}}}}
}

func base(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func connect(at time.Time, pid int, exe, remote string, port int, proto string) *event.Event {
	return &event.Event{Time: at, Kind: event.NetConnect, Proc: &event.Process{PID: pid, UID: 33, User: "www-data", Comm: base(exe), Exe: exe},
		Net: &event.Socket{Proto: proto, Remote: netip.MustParseAddr(remote), RPort: port}}
}

func listen(at time.Time, pid int, exe string, port int, proto string) *event.Event {
	return &event.Event{Time: at, Kind: event.NetListen, Proc: &event.Process{PID: pid, Comm: base(exe), Exe: exe},
		Net: &event.Socket{Proto: proto, LPort: port}}
}

func login(at time.Time, user, addr, method string) *event.Event {
	return &event.Event{Time: at, Kind: event.AuthSuccess, User: user, Addr: netip.MustParseAddr(addr), Method: method}
}

// normalWeek is a quiet week: php-fpm runs sh, cron runs backups, nginx
// talks to the app and the database, alice logs in by key from the office
// in office hours.
func normalWeek() []*event.Event {
	var evs []*event.Event
	for d := range 7 {
		day := t0.Add(time.Duration(d) * 24 * time.Hour)
		evs = append(evs,
			exec(day, 100+d, "www-data", 33, "/usr/bin/sh", "/usr/sbin/php-fpm8.2", 1201),
			exec(day.Add(time.Hour), 200+d, "root", 0, "/usr/local/bin/backup", "/usr/sbin/cron", 900),
			connect(day, 300+d, "/usr/sbin/php-fpm8.2", "10.0.0.5", 5432, "tcp"),
			connect(day, 300+d, "/usr/sbin/php-fpm8.2", "2001:db8:1:2::9", 443, "tcp6"),
			listen(day, 812, "/usr/sbin/nginx", 443, "tcp"),
			login(day.Add(time.Duration(d%3)*time.Hour), "alice", "203.0.113.7", "publickey"),
		)
	}
	return evs
}

func learnt(t *testing.T) *Model {
	t.Helper()
	m := NewModelIn(Caps{}, time.UTC)
	for _, ev := range normalWeek() {
		m.Learn(ev)
	}
	return m
}

func TestLearnPromoteDetect(t *testing.T) {
	var vs Versions
	v := vs.Promote(learnt(t), "end of learning", t0.Add(7*24*time.Hour))
	if v.N != 1 {
		t.Fatalf("first version numbered %d", v.N)
	}
	m, err := v.ModelIn(Caps{}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	det := NewDeviations(m, Config{Loc: time.UTC, AuthMinLogins: 5})
	after := t0.Add(8 * 24 * time.Hour)
	for _, c := range []struct {
		name   string
		ev     *event.Event
		rule   string
		stage  signal.Stage
		reason string
		ents   string
	}{
		{name: "normal sh under php-fpm", ev: exec(after, 5000, "www-data", 33, "/usr/bin/sh", "/usr/sbin/php-fpm8.2", 1201)},
		{name: "curl under php-fpm", ev: exec(after, 4411, "www-data", 33, "/usr/bin/curl", "/usr/sbin/php-fpm8.2", 1201),
			rule: RuleNewProcess, stage: signal.Execution,
			reason: "curl(4411) under php-fpm8.2(1201) has never run before (as www-data); known children of php-fpm8.2: sh (7 times)",
			ents:   "process:4411 process:1201 user:www-data"},
		{name: "sh under php-fpm as root", ev: exec(after, 4412, "root", 0, "/usr/bin/sh", "/usr/sbin/php-fpm8.2", 1201),
			rule: RuleNewProcess, stage: signal.Execution,
			reason: "sh(4412) under php-fpm8.2(1201) has never run as root before, only as www-data (7 times); known children of php-fpm8.2: sh (7 times)",
			ents:   "process:4412 process:1201"},
		{name: "known destination, other address in the /24", ev: connect(after, 9, "/usr/sbin/php-fpm8.2", "10.0.0.77", 5432, "tcp")},
		{name: "known v6 destination in the /48", ev: connect(after, 9, "/usr/sbin/php-fpm8.2", "2001:db8:1:ffff::1", 443, "tcp6")},
		{name: "new destination", ev: connect(after, 4411, "/usr/sbin/php-fpm8.2", "198.51.100.9", 4444, "tcp"),
			rule: RuleNewDestination, stage: signal.Exfiltration,
			reason: "php-fpm8.2(4411) /usr/sbin/php-fpm8.2 connected to 198.51.100.9 port 4444/tcp: 198.51.100.0/24 never seen for /usr/sbin/php-fpm8.2; known destinations: 10.0.0.0/24 port 5432/tcp (7 times), 2001:db8:1::/48 port 443/tcp (7 times)",
			ents:   "ip:198.51.100.9 process:4411 user:www-data"},
		{name: "known listener", ev: listen(after, 812, "/usr/sbin/nginx", 443, "tcp6")},
		{name: "new listener", ev: listen(after, 4420, "/usr/bin/nc", 4444, "tcp"),
			rule: RuleNewListener, stage: signal.Persistence,
			reason: "nc(4420) /usr/bin/nc listens on 4444/tcp, never seen before; known listeners of /usr/bin/nc: none",
			ents:   "process:4420"},
		{name: "usual login", ev: login(after.Add(time.Hour), "alice", "203.0.113.200", "publickey")},
		{name: "login from new prefix by password at night", ev: login(after.Add(-6*time.Hour), "alice", "198.51.100.9", "password"),
			rule: RuleAuthAnomaly, stage: signal.InitialAccess,
			reason: "alice logged in by password from 198.51.100.9 at 03h UTC: new source 198.51.100.0/24 (known: 203.0.113.0/24 (7 times)); new method password (known: publickey (7 times)); never logged in within an hour of 03h before (known hours: 09h, 10h, 11h)",
			ents:   "ip:198.51.100.9 user:alice"},
		{name: "unknown user", ev: login(after, "bob", "203.0.113.7", "publickey"),
			rule: RuleAuthAnomaly, stage: signal.InitialAccess,
			reason: "bob logged in by publickey from 203.0.113.7 at 09h UTC: bob never logged in during the baseline",
			ents:   "ip:203.0.113.7 user:bob"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []signal.Signal
			det.Observe(c.ev, func(s signal.Signal) { got = append(got, s) })
			if c.rule == "" {
				if len(got) != 0 {
					t.Fatalf("want nothing, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("want one signal, got %d", len(got))
			}
			s := got[0]
			var ents []string
			for _, e := range s.Entities {
				ents = append(ents, e.String())
			}
			if s.Rule != c.rule || s.Stage != c.stage || s.Weight != 30 || s.Subject == "" || len(s.Evidence) != 1 {
				t.Errorf("got %s/%s/%v subject %q", s.Rule, s.Stage, s.Weight, s.Subject)
			}
			if s.Reason != c.reason {
				t.Errorf("reason\n got %s\nwant %s", s.Reason, c.reason)
			}
			if strings.Join(ents, " ") != c.ents {
				t.Errorf("entities %q, want %q", strings.Join(ents, " "), c.ents)
			}
		})
	}
}

// A quiet second week raises nothing against the first week's baseline.
func TestQuietWeekSilent(t *testing.T) {
	det := NewDeviations(learnt(t), utc)
	for _, ev := range normalWeek() {
		ev.Time = ev.Time.Add(7 * 24 * time.Hour)
		det.Observe(ev, func(s signal.Signal) { t.Errorf("unexpected %s: %s", s.Rule, s.Reason) })
	}
}

func TestSubjectsDistinguishKeys(t *testing.T) {
	det := NewDeviations(learnt(t), Config{Weights: Weights{NewDestination: 45}, Loc: time.UTC})
	var subjects []string
	at := t0.Add(30 * 24 * time.Hour)
	for _, ev := range []*event.Event{
		connect(at, 1, "/usr/bin/curl", "198.51.100.9", 443, "tcp"),
		connect(at, 1, "/usr/bin/curl", "198.51.100.9", 80, "tcp"),
		connect(at, 1, "/usr/bin/curl", "192.0.2.1", 443, "tcp"),
	} {
		det.Observe(ev, func(s signal.Signal) {
			if s.Weight != 45 {
				t.Errorf("weight %v", s.Weight)
			}
			subjects = append(subjects, s.Key())
		})
	}
	if len(subjects) != 3 || len(slices.Compact(slices.Sorted(slices.Values(subjects)))) != 3 {
		t.Fatalf("keys not distinct: %q", subjects)
	}
}

// 1e6 distinct keys per kind stay under the cap, and what the host does
// every day survives the churn.
func TestBoundedUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn")
	}
	caps := Caps{Processes: 1000, Outbound: 1000, Listeners: 100, Logins: 1000, Users: 100}
	m := NewModel(caps)
	for _, ev := range normalWeek() {
		for range 50 { // routine: seen often
			m.Learn(ev)
		}
	}
	at := t0.Add(8 * 24 * time.Hour)
	for i := range 1_000_000 {
		a := netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 1})
		m.Learn(exec(at, i, "u", 1, fmt.Sprintf("/tmp/x%d", i), "/bin/sh", 1))
		m.Learn(connect(at, i, "/usr/bin/curl", a.String(), 443, "tcp"))
		m.Learn(listen(at, i, "/usr/bin/nc", i%65536, "tcp"))
		m.Learn(login(at, fmt.Sprintf("user%d", i), "203.0.113.1", "password"))
		if i%100_000 == 0 || i == 999_999 {
			n := m.Len()
			if n[KindProcess] > caps.Processes || n[KindOutbound] > caps.Outbound || n[KindListener] > caps.Listeners ||
				n[KindAuth] > caps.Logins || len(m.hours.m) > caps.Users {
				t.Fatalf("after %d keys: %v over caps", i, n)
			}
		}
	}
	if ev := m.Evicted(); ev[KindOutbound] < 999_000 {
		t.Errorf("evictions not counted: %v", ev)
	}
	det := NewDeviations(m, utc)
	for _, ev := range normalWeek() {
		det.Observe(ev, func(s signal.Signal) { t.Errorf("routine key evicted: %s", s.Reason) })
	}
}

func TestSnapshotRoundTripByteIdentical(t *testing.T) {
	m := learnt(t)
	m.Learn(exec(t0, 1, "", 1000, "", "", 1)) // partial: no exe, no user name
	m.Learn(&event.Event{Time: t0, Kind: event.AuthSuccess, User: "console", Method: "password"})
	k1 := m.Snapshot().Kinds()
	s, err := ParseKinds(k1)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := FromSnapshot(s, Caps{})
	if err != nil {
		t.Fatal(err)
	}
	k2 := m2.Snapshot().Kinds()
	for _, kind := range AllKinds() {
		if !bytes.Equal(k1[kind], k2[kind]) {
			t.Errorf("%s differs:\n%s\n%s", kind, k1[kind], k2[kind])
		}
	}
	if len(k1) != len(AllKinds()) {
		t.Errorf("kinds %d", len(k1))
	}
	// Learning order does not change the bytes.
	evs := normalWeek()
	slices.Reverse(evs)
	m3 := NewModelIn(Caps{}, time.UTC)
	for _, ev := range evs {
		m3.Learn(ev)
	}
	m4 := learnt(t)
	if a, b := m3.Snapshot().Kinds(), m4.Snapshot().Kinds(); !bytes.Equal(a[KindAuth], b[KindAuth]) || !bytes.Equal(a[KindProcess], b[KindProcess]) {
		t.Error("learning order changed the snapshot")
	}
}

func TestFromSnapshotRejects(t *testing.T) {
	for name, doc := range map[string]map[string]json.RawMessage{
		"bad prefix":     {KindOutbound: json.RawMessage(`[{"exe":"/x","prefix":"10.0.0.1/32","port":1,"proto":"tcp","count":1,"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:00Z"}]`)},
		"bad port":       {KindListener: json.RawMessage(`[{"exe":"/x","proto":"tcp","port":70000,"count":1,"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:00Z"}]`)},
		"empty exe":      {KindProcess: json.RawMessage(`[{"parent":"/p","exe":"","user":"u","count":1,"first":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:00Z"}]`)},
		"fractional sec": {KindProcess: json.RawMessage(`[{"parent":"/p","exe":"/e","user":"u","count":1,"first":"2026-01-01T00:00:00.5Z","last":"2026-01-01T00:00:00Z"}]`)},
	} {
		s, err := ParseKinds(doc)
		if err == nil {
			_, err = FromSnapshot(s, Caps{})
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseKinds(map[string]json.RawMessage{KindAuth: json.RawMessage(`{"logins":[],"extra":1}`)}); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestDiff(t *testing.T) {
	var vs Versions
	m := learnt(t)
	v1 := vs.Promote(m, "end of learning", t0)
	m.Learn(exec(t0, 1, "www-data", 33, "/usr/bin/convert", "/usr/sbin/php-fpm8.2", 1201))
	m.Learn(login(t0.Add(-2*time.Hour), "bob", "2001:db8:5::1", "password"))
	v2 := vs.Promote(m, "relearn", t0.Add(time.Hour))
	if v2.N != 2 {
		t.Fatalf("second version numbered %d", v2.N)
	}
	got, err := Diff(v1, v2)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		"+ process: /usr/sbin/php-fpm8.2 → /usr/bin/convert as www-data",
		"+ auth: bob at 07h",
		"+ auth: bob from 2001:db8:5::/48 by password",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("diff\n got %q\nwant %q", lines, want)
	}
	back, _ := Diff(v2, v1)
	if len(back) != 3 || back[0].Op != "removed" {
		t.Errorf("reverse diff %v", back)
	}
	if same, _ := Diff(v1, v1); len(same) != 0 {
		t.Errorf("self diff %v", same)
	}
	if l, ok := vs.Latest(); !ok || l.N != 2 {
		t.Error("latest")
	}
	if _, err := NewVersions([]Version{v2}); err == nil {
		t.Error("misnumbered history accepted")
	}
}

func FuzzFromSnapshot(f *testing.F) {
	m := NewModelIn(Caps{}, time.UTC)
	for _, ev := range normalWeek() {
		m.Learn(ev)
	}
	for _, raw := range m.Snapshot().Kinds() {
		f.Add([]byte(raw))
	}
	f.Add([]byte(`{"logins":[{"user":"a","prefix":"::/48","method":"x","count":18446744073709551615,"first":"0001-01-01T00:00:00Z","last":"9999-12-31T23:59:59Z"}],"hours":[{"user":"a","hours":[1,2],"count":1,"first":"0001-01-01T00:00:00+01:00","last":"0001-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`[{"exe":"\xff","prefix":"1.2.3.0/24","port":-1,"proto":"tcp"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes offered as every kind at once.
		docs := map[string]json.RawMessage{}
		for _, k := range AllKinds() {
			docs[k] = data
		}
		s, err := ParseKinds(docs)
		if err != nil {
			return
		}
		m, err := FromSnapshot(s, Caps{Processes: 8, Outbound: 8, Listeners: 8, Logins: 8, Users: 8})
		if err != nil {
			return
		}
		k1 := m.Snapshot().Kinds()
		s2, err := ParseKinds(k1)
		if err != nil {
			t.Fatalf("own output rejected: %v", err)
		}
		m2, err := FromSnapshot(s2, Caps{Processes: 8, Outbound: 8, Listeners: 8, Logins: 8, Users: 8})
		if err != nil {
			t.Fatalf("own output rejected: %v", err)
		}
		k2 := m2.Snapshot().Kinds()
		for _, k := range AllKinds() {
			if !bytes.Equal(k1[k], k2[k]) {
				t.Fatalf("%s not stable:\n%s\n%s", k, k1[k], k2[k])
			}
		}
		NewDeviations(m, utc).Observe(login(t0, "a", "::1", "x"), func(signal.Signal) {})
	})
}
