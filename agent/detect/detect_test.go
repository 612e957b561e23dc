package detect

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/authlog"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/weblog"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

func testPolicy(t testing.TB) *schema.Policy {
	t.Helper()
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	p.Whitelist.AdminIPs = map[string]schema.WhitelistIP{"ops": {CIDR: "203.0.113.200/32"}}
	return p
}

// parseFile turns a testdata log (auth syslog or web access lines; '#'
// lines are comments) into events.
func parseFile(t *testing.T, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ap := &authlog.Parser{Years: logtime.NewYears(time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC), time.UTC)}
	wp := &weblog.Parser{Format: "auto"}
	var out []event.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ev event.Event
		if line[0] >= '0' && line[0] <= '9' {
			ev, err = wp.ParseLine(line)
		} else {
			ev, err = ap.ParseLine(line)
		}
		if err == authlog.ErrNotAuth {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestCases runs every testdata/*.log through the detectors and compares
// the signals (rule, entities, reason) with the .want file, one per line.
func TestCases(t *testing.T) {
	logs, _ := filepath.Glob("testdata/*.log")
	if len(logs) == 0 {
		t.Fatal("no test cases")
	}
	for _, path := range logs {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			p := testPolicy(t)
			wl, err := whitelist.New(p.Whitelist)
			if err != nil {
				t.Fatal(err)
			}
			set := New(p, wl)
			var got []string
			emit := func(s signal.Signal) {
				ents := make([]string, len(s.Entities))
				for i, e := range s.Entities {
					ents[i] = e.String()
				}
				got = append(got, s.Rule+" "+strings.Join(ents, ",")+" "+s.Reason)
				if len(s.Evidence) == 0 || len(s.Evidence) > signal.MaxEvidence+1 {
					t.Errorf("signal %s carries %d evidence events", s.Rule, len(s.Evidence))
				}
			}
			for _, ev := range parseFile(t, path) {
				set.Observe(&ev, emit)
			}
			wantB, err := os.ReadFile(strings.TrimSuffix(path, ".log") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSpace(string(wantB)), "\n")
			if len(want) == 1 && want[0] == "" {
				want = nil
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("signals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestBoundedUnderChurn: a million distinct sources never hold more than
// the configured cap.
func TestBoundedUnderChurn(t *testing.T) {
	p := testPolicy(t)
	p.Detectors.MaxTrackedSources = 1000
	wl, _ := whitelist.New(p.Whitelist)
	set := New(p, wl)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := event.Event{Kind: event.AuthFailure, User: "root", Method: "password"}
	for i := 0; i < 200000; i++ {
		ev.Time = base.Add(time.Duration(i) * time.Millisecond)
		ev.Addr = ipFrom(uint32(0x0a000000 + i))
		set.Observe(&ev, func(signal.Signal) {})
	}
	st := set.Stats()
	if st.Tracked > 1000 {
		t.Fatalf("tracking %d sources, cap 1000", st.Tracked)
	}
	if st.Evicted < 199000 {
		t.Fatalf("evicted %d, want ~199000", st.Evicted)
	}
}

func TestSettleReportsFinalCount(t *testing.T) {
	p := testPolicy(t)
	wl, _ := whitelist.New(p.Whitelist)
	set := New(p, wl)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []signal.Signal
	emit := func(s signal.Signal) { got = append(got, s) }
	ev := event.Event{Kind: event.AuthFailure, User: "root", Method: "password", Addr: ipFrom(0xc0000201)}
	for i := 0; i < 7; i++ { // reports at 5; 7 is below the next doubling
		ev.Time = base.Add(time.Duration(i) * time.Second)
		set.Observe(&ev, emit)
	}
	if len(got) != 1 {
		t.Fatalf("%d signals before settling, want 1", len(got))
	}
	set.Settle(base.Add(5*time.Minute), false, emit)
	if len(got) != 1 {
		t.Fatalf("settled an episode that is still within its window")
	}
	set.Settle(base.Add(11*time.Minute), false, emit)
	if len(got) != 2 || !strings.HasPrefix(got[1].Reason, "7 failed SSH logins") {
		t.Fatalf("after the window: %v", got)
	}
	set.Settle(base.Add(20*time.Minute), true, emit)
	if len(got) != 2 {
		t.Fatalf("settled the same count twice")
	}
}
