package authlog

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
)

// refTime is the "file mtime" the table tests infer years from.
var refTime = time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)

func newParser() *Parser {
	return &Parser{Years: logtime.NewYears(refTime, time.UTC)}
}

// optionalKeys are compared only when a case lists them, so most cases
// stay short.
var optionalKeys = []string{"time", "host", "program", "pid", "source"}

type tableCase struct {
	lineNo int
	fields []string // input columns
	want   string   // expected column
}

func readTable(t testing.TB, name string, columns int) []tableCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []tableCase
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != columns+1 {
			t.Fatalf("%s:%d: want %d tab-separated columns, got %d", name, n, columns+1, len(parts))
		}
		// A literal \r at the end of the input stands for a CR, which
		// editors would otherwise eat.
		last := &parts[columns-1]
		if s, ok := strings.CutSuffix(*last, `\r`); ok {
			*last = s + "\r"
		}
		cases = append(cases, tableCase{lineNo: n, fields: parts[:columns], want: parts[columns]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

func checkResult(t *testing.T, where string, ev event.Event, err error, want string) {
	t.Helper()
	switch want {
	case "error:not_auth":
		if !errors.Is(err, ErrNotAuth) {
			t.Errorf("%s: got %v, %+v; want ErrNotAuth", where, err, ev)
		}
		return
	case "error:malformed":
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, %+v; want ErrMalformed", where, err, ev)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected error %v", where, err)
		return
	}
	var exp map[string]any
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("%s: bad expectation %q: %v", where, want, err)
	}
	ev.Line = ""
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range optionalKeys {
		if _, ok := exp[k]; !ok {
			delete(got, k)
		}
	}
	for k, v := range exp {
		if v == "" || v == 0.0 {
			delete(exp, k) // a listed zero means "absent"
		}
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s:\n got  %s\n want %s", where, mustJSON(got), mustJSON(exp))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseLineTable(t *testing.T) {
	for _, c := range readTable(t, "cases.txt", 1) {
		p := newParser()
		line := c.fields[0]
		ev, err := p.ParseLine(line)
		where := "cases.txt:" + strconv.Itoa(c.lineNo)
		checkResult(t, where, ev, err, c.want)
		if err == nil && ev.Line != line {
			t.Errorf("%s: Line = %q, want the input", where, ev.Line)
		}
	}
}

func TestParseMessageTable(t *testing.T) {
	ts := time.Date(2026, 5, 1, 2, 3, 4, 0, time.UTC)
	for _, c := range readTable(t, "journald.txt", 3) {
		pid, err := strconv.Atoi(c.fields[1])
		if err != nil {
			t.Fatal(err)
		}
		p := &Parser{Source: "journald"}
		ev, err := p.ParseMessage(ts, "jhost", c.fields[0], pid, c.fields[2])
		where := "journald.txt:" + strconv.Itoa(c.lineNo)
		checkResult(t, where, ev, err, c.want)
		if err == nil && (!ev.Time.Equal(ts) || ev.Source != "journald" || ev.Line != c.fields[2]) {
			t.Errorf("%s: header fields not carried: %+v", where, ev)
		}
	}
}

func TestSource(t *testing.T) {
	p := &Parser{Source: "file:/var/log/auth.log", Years: logtime.NewYears(refTime, time.UTC)}
	ev, err := p.ParseLine("Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2")
	if err != nil || ev.Source != "file:/var/log/auth.log" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	ev, err = newParser().ParseLine("Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2")
	if err != nil || ev.Source != "" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	// The zero Parser works (year from now).
	var zp Parser
	if _, err := zp.ParseLine("Dec 10 09:32:20 LabSZ sshd[24680]: Invalid user x from 1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	// The package-level helper.
	if ev, err := ParseMessage(refTime, "h", "sshd", 1, "Invalid user x from 1.2.3.4"); err != nil || ev.Kind != event.AuthInvalidUser {
		t.Fatalf("got %+v, %v", ev, err)
	}
}

func TestYearAcrossNewYear(t *testing.T) {
	p := &Parser{Years: logtime.NewYears(time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC), time.UTC)}
	a, _ := p.ParseLine("Dec 31 23:59:59 h sshd[1]: Invalid user x from 1.2.3.4")
	b, _ := p.ParseLine("Jan  1 00:00:01 h sshd[1]: Invalid user x from 1.2.3.4")
	if a.Time.Year() != 2026 || b.Time.Year() != 2027 {
		t.Fatalf("got %v, %v", a.Time, b.Time)
	}
}

func TestAllocs(t *testing.T) {
	p := newParser()
	for _, l := range []string{
		"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
		"Dec 10 06:55:48 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3  user=root",
		"Dec 10 06:55:48 LabSZ sshd[24200]: Received disconnect from 173.234.31.186: 11: Bye Bye [preauth]",
		"Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
	} {
		if n := testing.AllocsPerRun(100, func() { p.ParseLine(l) }); n != 0 {
			t.Errorf("%q: %v allocs per line", l, n)
		}
	}
}
