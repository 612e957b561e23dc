package authlog

import (
	"bufio"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
	"github.com/picket-agent/picket/internal/integration"
)

// dataPath locates the shared third-party data folder (a sibling of the
// repository) from this source file, so it works whatever directory the
// test runs in.
func dataPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data", "loghub", name)
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// oracle is an independent, deliberately simple regexp classifier: every
// line it matches must yield exactly its kind, every other line ErrNotAuth.
type oracle struct {
	re   *regexp.Regexp
	kind event.Kind
}

var sshdOracle = []oracle{
	{regexp.MustCompile(`sshd\[\d+\]: (message repeated \d+ times: \[ )?Failed \S+ for .* from [\d.]+ port \d+ ssh2`), event.AuthFailure},
	{regexp.MustCompile(`sshd\[\d+\]: Invalid user .* from [\d.]+`), event.AuthInvalidUser},
	{regexp.MustCompile(`sshd\[\d+\]: Accepted \S+ for \S+ from [\d.]+ port \d+`), event.AuthSuccess},
	{regexp.MustCompile(`sshd\[\d+\]: pam_unix\(sshd:auth\): authentication failure;`), event.AuthPAMFailure},
	{regexp.MustCompile(`sshd\[\d+\]: PAM \d+ more authentication failures?;`), event.AuthPAMFailure},
	{regexp.MustCompile(`sshd\[\d+\]: .*(Too many authentication failures|maximum authentication attempts exceeded)`), event.AuthTooMany},
	{regexp.MustCompile(`sshd\[\d+\]: (error: )?Received disconnect from .*\[preauth\]\s*$`), event.AuthPreauthDisconnect},
	{regexp.MustCompile(`sshd\[\d+\]: (Disconnected from|Connection closed by|Connection reset by) .*\d \[preauth\]\s*$`), event.AuthPreauthDisconnect},
	{regexp.MustCompile(`sshd\[\d+\]: Did not receive identification string from`), event.AuthPreauthDisconnect},
}

var linuxOracle = []oracle{
	{regexp.MustCompile(`sshd\(pam_unix\)\[\d+\]: authentication failure;`), event.AuthFailure},
	{regexp.MustCompile(`su\(pam_unix\)\[\d+\]: session opened for user \S+ by`), event.Su},
}

func classify(o []oracle, line string) event.Kind {
	for _, c := range o {
		if c.re.MatchString(line) {
			return c.kind
		}
	}
	return ""
}

// runRealLog parses every line and checks it against the oracle, returning
// events by kind and failure counts per address.
func runRealLog(t *testing.T, name string, o []oracle, ref time.Time) (map[event.Kind]int, map[netip.Addr]int) {
	path := integration.File(t, dataPath(name))
	lines := readLines(t, path)
	p := &Parser{Source: "file:" + name, Years: logtime.NewYears(ref, time.UTC)}
	kinds := map[event.Kind]int{}
	failures := map[netip.Addr]int{}
	var malformed, mismatched int
	var prev time.Time
	for i, line := range lines {
		want := classify(o, line)
		ev, err := p.ParseLine(line)
		switch {
		case errors.Is(err, ErrMalformed):
			malformed++
			t.Errorf("%s:%d malformed: %q", name, i+1, line)
			continue
		case err != nil && !errors.Is(err, ErrNotAuth):
			t.Fatalf("%s:%d unexpected error %v", name, i+1, err)
		}
		if err == nil {
			if ev.Time.Before(prev) {
				t.Errorf("%s:%d time went backwards: %v after %v", name, i+1, ev.Time, prev)
			}
			prev = ev.Time
		}
		got := ev.Kind
		if got != want {
			mismatched++
			if mismatched <= 20 {
				t.Errorf("%s:%d kind %q (err %v), oracle says %q: %q", name, i+1, got, err, want, line)
			}
			continue
		}
		if got == "" {
			continue
		}
		kinds[got]++
		if got == event.AuthFailure {
			failures[ev.Addr] += ev.N()
		}
	}
	t.Logf("%s: %d lines, events by kind %v", name, len(lines), kinds)
	if malformed != 0 || mismatched != 0 {
		t.Fatalf("%s: %d malformed, %d mismatched", name, malformed, mismatched)
	}
	return kinds, failures
}

func TestOpenSSH2k(t *testing.T) {
	kinds, failures := runRealLog(t, "OpenSSH_2k.log", sshdOracle, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC))
	// Figures from the data README and grep, as a sanity floor for the
	// oracle itself.
	if kinds[event.AuthFailure] < 500 || kinds[event.AuthInvalidUser] < 110 || kinds[event.AuthSuccess] != 1 {
		t.Errorf("too few events: %v", kinds)
	}
	for ip, min := range map[string]int{"183.62.140.253": 250, "187.141.143.180": 70} {
		if n := failures[netip.MustParseAddr(ip)]; n < min {
			t.Errorf("failures from %s = %d, want ≥ %d", ip, n, min)
		}
	}
}

func TestLinux2k(t *testing.T) {
	// The log runs June to July 2005.
	kinds, failures := runRealLog(t, "Linux_2k.log", linuxOracle, time.Date(2005, 8, 1, 0, 0, 0, 0, time.UTC))
	if kinds[event.AuthFailure] < 480 || kinds[event.Su] < 80 {
		t.Errorf("too few events: %v", kinds)
	}
	if n := failures[netip.MustParseAddr("150.183.249.110")]; n < 80 {
		t.Errorf("failures from 150.183.249.110 = %d", n)
	}
}

func BenchmarkParseLine(b *testing.B) {
	path := integration.File(b, dataPath("OpenSSH_2k.log"))
	lines := readLines(b, path)
	// time.Local as in production: zone lookups are part of the cost.
	p := &Parser{Years: logtime.NewYears(refTime, time.Local)}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for _, l := range lines {
			p.ParseLine(l)
		}
		n += len(lines)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}
