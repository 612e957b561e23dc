package logtime

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func date(y int, m time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, m, d, h, mi, s, ns, time.UTC)
}

func TestParsePrefix(t *testing.T) {
	ref := date(2026, time.December, 31, 0, 0, 0, 0)
	cases := []struct {
		line string
		want time.Time
		rest string
		ok   bool
	}{
		{"Dec 10 06:55:46 LabSZ sshd[1]: x", date(2026, 12, 10, 6, 55, 46, 0), "LabSZ sshd[1]: x", true},
		{"Jun  4 01:02:03 host x", date(2026, 6, 4, 1, 2, 3, 0), "host x", true},
		{"Jun 04 01:02:03 host x", date(2026, 6, 4, 1, 2, 3, 0), "host x", true},
		{"Jun  4 01:02:03.250 host", date(2026, 6, 4, 1, 2, 3, 250_000_000), "host", true},
		{"Jun  4 01:02:03", date(2026, 6, 4, 1, 2, 3, 0), "", true},
		{"2026-11-25T10:00:00.123456+00:00 host sshd[1]: m", date(2026, 11, 25, 10, 0, 0, 123456000), "host sshd[1]: m", true},
		{"2026-11-25T10:00:00+02:00 h", date(2026, 11, 25, 8, 0, 0, 0), "h", true},
		{"2026-11-25T10:00:00-0130 h", date(2026, 11, 25, 11, 30, 0, 0), "h", true},
		{"2026-11-25T10:00:00Z h", date(2026, 11, 25, 10, 0, 0, 0), "h", true},
		{"2026-11-25T10:00:00.123456789123+00:00", date(2026, 11, 25, 10, 0, 0, 123456789), "", true},
		{"2026-11-25T10:00:00", time.Time{}, "", false},   // no zone
		{"2026-11-25T10:00:00+0", time.Time{}, "", false}, // truncated zone
		{"2026-13-25T10:00:00Z", time.Time{}, "", false},
		{"2026-11-25T10:00:00Zx", time.Time{}, "", false},
		{"Foo 10 06:55:46 h", time.Time{}, "", false},
		{"Dec 32 06:55:46 h", time.Time{}, "", false},
		{"Dec  0 06:55:46 h", time.Time{}, "", false},
		{"Dec 10 24:55:46 h", time.Time{}, "", false},
		{"Dec 10 06:5:46 h", time.Time{}, "", false},
		{"Dec 10 06:55", time.Time{}, "", false},
		{"", time.Time{}, "", false},
	}
	for _, c := range cases {
		y := NewYears(ref, time.UTC)
		got, rest, ok := y.ParsePrefix(c.line)
		if ok != c.ok || !got.Equal(c.want) || rest != c.rest {
			t.Errorf("ParsePrefix(%q) = %v, %q, %v; want %v, %q, %v", c.line, got, rest, ok, c.want, c.rest, c.ok)
		}
	}
}

func TestYearInference(t *testing.T) {
	// A file last modified on 2027-01-02 holding Dec 30 .. Jan 2 lines.
	y := NewYears(date(2027, 1, 2, 12, 0, 0, 0), time.UTC)
	lines := []string{"Dec 30 23:00:00", "Dec 31 23:59:59", "Jan  1 00:00:01", "Jan  2 10:00:00", "Feb  1 00:00:00"}
	want := []int{2026, 2026, 2027, 2027, 2027}
	var prev time.Time
	for i, l := range lines {
		got, _, ok := y.ParsePrefix(l)
		if !ok || got.Year() != want[i] {
			t.Fatalf("%q: got %v, want year %d", l, got, want[i])
		}
		if got.Before(prev) {
			t.Fatalf("not monotonic at %q", l)
		}
		prev = got
	}

	// First line within the slack after ref keeps ref's year (clock skew).
	y = NewYears(date(2026, 6, 1, 0, 0, 0, 0), time.UTC)
	if got, _, _ := y.ParsePrefix("Jun 20 00:00:00"); got.Year() != 2026 {
		t.Errorf("skew: got %v", got)
	}
	// Far after ref: previous year.
	y = NewYears(date(2026, 6, 1, 0, 0, 0, 0), time.UTC)
	if got, _, _ := y.ParsePrefix("Aug 20 00:00:00"); got.Year() != 2025 {
		t.Errorf("previous year: got %v", got)
	}
	// A sparse log jumping forward months stays in the same year.
	y = NewYears(date(2026, 12, 1, 0, 0, 0, 0), time.UTC)
	y.ParsePrefix("Jan  5 00:00:00")
	if got, _, _ := y.ParsePrefix("Sep  5 00:00:00"); got.Year() != 2026 {
		t.Errorf("forward gap: got %v", got)
	}
	// RFC 3339 lines carry their year and do not disturb inference.
	y = NewYears(date(2026, 12, 31, 0, 0, 0, 0), time.UTC)
	y.ParsePrefix("Dec 30 00:00:00")
	y.ParsePrefix("2020-01-01T00:00:00Z")
	if got, _, _ := y.ParsePrefix("Dec 31 00:00:00"); got.Year() != 2026 {
		t.Errorf("rfc3339 interleave: got %v", got)
	}
}

func TestLocation(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	y := NewYears(date(2026, 12, 31, 0, 0, 0, 0), berlin)
	got, _, _ := y.ParsePrefix("Dec 10 06:55:46 h")
	if !got.Equal(date(2026, 12, 10, 5, 55, 46, 0)) {
		t.Errorf("got %v", got.UTC())
	}
}

func TestParseCLF(t *testing.T) {
	got, ok := ParseCLF("10/Oct/2000:13:55:36 -0700")
	if !ok || !got.Equal(date(2000, 10, 10, 20, 55, 36, 0)) {
		t.Errorf("got %v %v", got, ok)
	}
	for _, bad := range []string{"", "10/Oct/2000:13:55:36", "10/Oct/2000:13:55:36 -07000", "10/Xyz/2000:13:55:36 -0700", "1O/Oct/2000:13:55:36 -0700", "10/Oct/2000:13:55:36 x0700"} {
		if _, ok := ParseCLF(bad); ok {
			t.Errorf("ParseCLF(%q) ok", bad)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	y := NewYears(date(2026, 12, 31, 0, 0, 0, 0), time.UTC)
	for _, l := range []string{"Dec 10 06:55:46 LabSZ sshd[24200]: x", "2026-11-25T10:00:00.123456+00:00 host x"} {
		if n := testing.AllocsPerRun(100, func() { y.ParsePrefix(l) }); n != 0 {
			t.Errorf("%q: %v allocs", l, n)
		}
	}
}

func BenchmarkParsePrefix(b *testing.B) {
	y := NewYears(date(2026, 12, 31, 0, 0, 0, 0), time.Local)
	for _, l := range []string{"Dec 10 06:55:46 LabSZ sshd[24200]: x", "2026-11-25T10:00:00.123456+00:00 host x"} {
		b.Run(l[:3], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				y.ParsePrefix(l)
			}
		})
	}
}

// seedLines feeds the fuzzer with real line prefixes from the auth parser's
// test data, which covers both timestamp forms.
func seedLines(f *testing.F) {
	f.Add("Dec 10 06:55:46 LabSZ sshd[24200]: x")
	f.Add("Jun  4 01:02:03 host")
	f.Add("2026-11-25T10:00:00.123456+00:00 host")
	f.Add("2026-11-25T10:00:00-07:00")
	file, err := os.Open(filepath.Join("..", "authlog", "testdata", "cases.txt"))
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "\t")
		if line != "" && !strings.HasPrefix(line, "#") {
			f.Add(line)
		}
	}
}

func FuzzParsePrefix(f *testing.F) {
	seedLines(f)
	f.Fuzz(func(t *testing.T, line string) {
		y := NewYears(date(2026, 12, 31, 0, 0, 0, 0), time.UTC)
		tm, rest, ok := y.ParsePrefix(line)
		if !ok {
			return
		}
		if !strings.HasSuffix(line, rest) {
			t.Fatalf("rest %q is not a suffix of %q", rest, line)
		}
		if tm.IsZero() {
			t.Fatalf("ok with zero time for %q", line)
		}
		if _, ok := ParseCLF(line); ok && len(line) != 26 {
			t.Fatalf("CLF accepted %q", line)
		}
	})
}
