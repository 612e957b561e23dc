package baseline

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func observe(d *Deviations, evs ...*event.Event) []signal.Signal {
	var got []signal.Signal
	for _, ev := range evs {
		d.Observe(ev, func(s signal.Signal) { got = append(got, s) })
	}
	return got
}

// The hour rule: local time, ±1 hour, only with enough learned logins.
func TestAuthHourRule(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	m := NewModelIn(Caps{}, cet)
	day := time.Date(2026, 3, 2, 9, 30, 0, 0, cet) // 08:30 UTC
	for d := range 12 {
		m.Learn(login(day.AddDate(0, 0, d), "alice", "203.0.113.7", "publickey"))
	}
	for d := range 3 {
		m.Learn(login(day.AddDate(0, 0, d), "bob", "203.0.113.8", "publickey"))
	}
	det := NewDeviations(m, Config{Loc: cet})
	later := day.AddDate(0, 0, 30)
	for _, c := range []struct {
		name string
		ev   *event.Event
		want string // reason substring, "" for nothing
	}{
		{"same hour", login(later, "alice", "203.0.113.7", "publickey"), ""},
		{"an hour later (neighbour)", login(later.Add(time.Hour), "alice", "203.0.113.7", "publickey"), ""},
		{"an hour earlier (neighbour)", login(later.Add(-time.Hour), "alice", "203.0.113.7", "publickey"), ""},
		{"three hours later", login(later.Add(3*time.Hour), "alice", "203.0.113.7", "publickey"),
			"alice logged in by publickey from 203.0.113.7 at 12h CET: never logged in within an hour of 12h before (known hours: 09h)"},
		{"bob has too few logins for hours", login(later.Add(10*time.Hour), "bob", "203.0.113.8", "publickey"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := observe(det, c.ev)
			switch {
			case c.want == "" && len(got) > 0:
				t.Errorf("unexpected: %s", got[0].Reason)
			case c.want != "" && (len(got) != 1 || got[0].Reason != c.want):
				t.Errorf("got %v, want %q", got, c.want)
			}
		})
	}
}

// A changed system file: the baseline's content, a package manager run
// seen in the events, a running dpkg and dpkg's md5sums all explain it;
// anything else is a deviation.
func TestFileChangedOutsidePackageUpdate(t *testing.T) {
	root := t.TempDir()
	dpkg := filepath.Join(root, "var/lib/dpkg")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := md5.Sum([]byte("packaged ls\n"))
	write("usr/bin/ls", "packaged ls\n")
	write("usr/bin/ps", "trojaned ps\n")
	write("var/lib/dpkg/info/coreutils.md5sums", "0123456789abcdef0123456789abcdef  usr/bin/cat\n"+hex.EncodeToString(sum[:])+"  usr/bin/ls\n")
	write("var/lib/dpkg/info/procps.md5sums", "00000000000000000000000000000000  usr/bin/ps\n")
	write("proc/1/comm", "systemd\n")

	hash := func(n int) string { return fmt.Sprintf("%064x", n) }
	changed := func(at time.Time, p string, h string) *event.Event {
		return &event.Event{Time: at, Kind: event.FileChanged, Source: "fim", Change: &event.Change{What: "file_modified", Op: "modified", Path: p, After: "sha256:" + h}}
	}
	m := NewModelIn(Caps{}, time.UTC)
	m.Learn(changed(t0, "/usr/lib/libx.so", hash(1)))
	cfg := Config{Loc: time.UTC, Packages: NewDpkg(dpkg, root)}
	at := t0.Add(48 * time.Hour)
	for _, c := range []struct {
		name string
		evs  []*event.Event
		want bool
	}{
		{"outside the system dirs", []*event.Event{changed(at, "/srv/app/x.php", hash(2))}, false},
		{"back to the baseline's content", []*event.Event{changed(at, "/usr/lib/libx.so", hash(1))}, false},
		{"md5 matches dpkg", []*event.Event{changed(at, "/usr/bin/ls", hash(3))}, false},
		{"md5 differs from dpkg", []*event.Event{changed(at, "/usr/bin/ps", hash(4))}, true},
		{"unknown to dpkg", []*event.Event{changed(at, "/usr/lib/libx.so", hash(5))}, true},
		{"after dpkg ran", []*event.Event{exec(at, 9, "root", 0, "/usr/bin/dpkg", "/usr/bin/apt-get", 8), changed(at.Add(time.Minute), "/usr/bin/ps", hash(6))}, false},
		{"long after dpkg ran", []*event.Event{exec(at, 9, "root", 0, "/usr/bin/dpkg", "/usr/bin/apt-get", 8), changed(at.Add(time.Hour), "/usr/bin/ps", hash(7))}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			det := NewDeviations(m, cfg)
			var fc []signal.Signal
			for _, s := range observe(det, c.evs...) {
				if s.Rule == RuleFileChanged {
					fc = append(fc, s)
				}
			}
			if (len(fc) > 0) != c.want {
				t.Fatalf("got %v, want signal=%v", fc, c.want)
			}
			if c.want && (fc[0].Stage != signal.Persistence || !strings.Contains(fc[0].Reason, "outside a package update")) {
				t.Errorf("signal %s %s", fc[0].Stage, fc[0].Reason)
			}
		})
	}
	// While dpkg runs (seen in /proc), every change is the package's.
	write("proc/77/comm", "dpkg\n")
	if got := observe(NewDeviations(m, cfg), changed(at, "/usr/bin/ps", hash(8))); len(got) != 0 {
		t.Errorf("change during a running dpkg flagged: %v", got[0].Reason)
	}
}

// Request rates are judged per hour of day with a neighbourhood and a
// floor; error shares against the learned share.
func TestWebRates(t *testing.T) {
	m := NewModelIn(Caps{}, time.UTC)
	src := "file:/var/log/nginx/access.log"
	req := func(at time.Time, ip string, status int) *event.Event {
		return &event.Event{Time: at, Kind: event.WebRequest, Source: src, Addr: netip.MustParseAddr(ip), Status: status}
	}
	// Learned: 100/min at 12h, 10/min at 03h, from one client at a time.
	for d := range 3 {
		day := t0.Truncate(24*time.Hour).AddDate(0, 0, d)
		for i := range 10 {
			m.Learn(req(day.Add(3*time.Hour+time.Duration(i)*time.Second), "203.0.113.1", 404))
		}
		for i := range 100 {
			m.Learn(req(day.Add(12*time.Hour+time.Duration(i)*500*time.Millisecond), fmt.Sprintf("203.0.113.%d", i%50), 200))
		}
	}
	snap := m.Snapshot()
	if len(snap.Web.Sources) != 1 || snap.Web.Sources[0].Peaks[12] != 100 || snap.Web.Sources[0].Peaks[3] != 10 || snap.Web.Sources[0].E4xx != 30 {
		t.Fatalf("learned %+v", snap.Web.Sources)
	}
	det := func() *Deviations { return NewDeviations(m, Config{Loc: time.UTC, ClientRateFloor: 1000}) }
	day := t0.Truncate(24*time.Hour).AddDate(0, 0, 10)
	burst := func(at time.Time, n, status int) []*event.Event {
		var evs []*event.Event
		for i := range n {
			evs = append(evs, req(at.Add(time.Duration(i)*50*time.Millisecond), fmt.Sprintf("198.51.100.%d", i%200), status))
		}
		return evs
	}
	for _, c := range []struct {
		name  string
		evs   []*event.Event
		rules []string
	}{
		{"lunch as usual", burst(day.Add(12*time.Hour), 250, 200), nil},
		{"lunch traffic an hour early", burst(day.Add(11*time.Hour), 250, 200), nil},
		{"lunch traffic at 03h", burst(day.Add(3*time.Hour), 250, 200), []string{RuleRequestRate}},
		{"below the floor at 03h", burst(day.Add(3*time.Hour), 100, 200), nil},
		{"5xx burst", burst(day.Add(12*time.Hour), 60, 503), []string{RuleErrorRate}},
		{"404s at their usual share", append(burst(day.Add(12*time.Hour), 60, 200), burst(day.Add(12*time.Hour+3*time.Second), 25, 404)...), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rules []string
			for _, s := range observe(det(), c.evs...) {
				rules = append(rules, s.Rule)
				if s.Stage != signal.Recon || len(s.Entities) != 1 || s.Entities[0].Value != "/var/log/nginx/access.log" {
					t.Errorf("signal %s %v: %s", s.Stage, s.Entities, s.Reason)
				}
			}
			if strings.Join(rules, ",") != strings.Join(c.rules, ",") {
				t.Errorf("rules %v, want %v", rules, c.rules)
			}
		})
	}
}
