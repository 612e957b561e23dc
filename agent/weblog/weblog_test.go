package weblog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/picket-agent/picket/agent/event"
)

type tableCase struct {
	where, format, line, want string
}

func readCases(t testing.TB) []tableCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []tableCase
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		parts := strings.Split(l, "\t")
		if len(parts) != 3 {
			t.Fatalf("cases.txt:%d: want 3 tab-separated columns, got %d", n, len(parts))
		}
		// A literal \r at the end of the input stands for a CR.
		if s, ok := strings.CutSuffix(parts[1], `\r`); ok {
			parts[1] = s + "\r"
		}
		cases = append(cases, tableCase{fmt.Sprintf("cases.txt:%d", n), parts[0], parts[1], parts[2]})
	}
	return cases
}

func TestParseLineTable(t *testing.T) {
	for _, c := range readCases(t) {
		p := &Parser{Format: c.format}
		ev, err := p.ParseLine(c.line)
		switch c.want {
		case "error:malformed":
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: got %v, %+v; want ErrMalformed", c.where, err, ev)
			}
			continue
		case "error:unknown_format":
			if !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("%s: got %v; want ErrUnknownFormat", c.where, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", c.where, err)
			continue
		}
		if ev.Line != c.line {
			t.Errorf("%s: Line not the input", c.where)
		}
		var exp map[string]any
		if err := json.Unmarshal([]byte(c.want), &exp); err != nil {
			t.Fatalf("%s: bad expectation: %v", c.where, err)
		}
		ev.Line = ""
		b, _ := json.Marshal(ev)
		var got map[string]any
		json.Unmarshal(b, &got)
		if _, ok := exp["time"]; !ok {
			delete(got, "time")
		}
		if !reflect.DeepEqual(got, exp) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(exp)
			t.Errorf("%s:\n got  %s\n want %s", c.where, g, w)
		}
	}
}

func TestSource(t *testing.T) {
	p := &Parser{Source: "file:/var/log/nginx/access.log"}
	ev, err := p.ParseLine(`1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"`)
	if err != nil || ev.Source != p.Source || ev.Kind != event.WebRequest {
		t.Fatalf("got %+v, %v", ev, err)
	}
}

var benchLines = map[string]string{
	"combined": `203.0.113.9 - - [25/Nov/2026:10:00:00 +0000] "GET /wp-content/plugins/x/readme.txt HTTP/1.1" 404 153 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"`,
	"json":     `{"time_local":"25/Nov/2026:10:00:00 +0000","remote_addr":"203.0.113.9","request":"GET /wp-content/plugins/x/readme.txt HTTP/1.1","status":"404","body_bytes_sent":"153","http_referer":"","http_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","host":"example.com"}`,
}

func TestNoAllocs(t *testing.T) {
	var p Parser
	for name, l := range benchLines {
		if n := testing.AllocsPerRun(100, func() { p.ParseLine(l) }); n != 0 {
			t.Errorf("%s: %v allocs", name, n)
		}
	}
}

func BenchmarkParseLine(b *testing.B) {
	for _, name := range []string{"combined", "json"} {
		l := benchLines[name]
		b.Run(name, func(b *testing.B) {
			var p Parser
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, err := p.ParseLine(l); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, c := range readCases(f) {
		f.Add(c.format, c.line)
	}
	f.Fuzz(func(t *testing.T, format, line string) {
		p := &Parser{Format: format}
		ev, err := p.ParseLine(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if ev.Kind != event.WebRequest || ev.Status < 0 || ev.Status > 999 || ev.Size < 0 {
			t.Fatalf("bad event %+v for %q", ev, line)
		}
		if ev.Addr.IsValid() && ev.Addr.Is4In6() {
			t.Fatalf("mapped address for %q", line)
		}
		if len(line) > 0 && line[0] != '{' {
			// CLF fields are slices of the line.
			for _, s := range []string{ev.Path, ev.HTTPMethod, ev.Referer, ev.UserAgent, ev.VHost, ev.User} {
				if !strings.Contains(line, s) {
					t.Fatalf("field %q not in %q", s, line)
				}
			}
		}
	})
}
