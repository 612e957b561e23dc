package authlog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// constants are the only strings the parser produces itself.
var constants = map[string]bool{
	"password": true, DetailSession: true, DetailInvalidUser: true,
	DetailReceivedDisconnect: true, DetailDisconnected: true, DetailConnectionClosed: true,
	DetailConnectionReset: true, DetailNoIdentification: true, DetailBannerExchange: true, DetailTimeout: true,
}

// checkInvariants holds for every successfully parsed event: the parser
// only slices its input, so every text field must occur in it.
func checkInvariants(t *testing.T, input string, ev event.Event, err error) {
	if err != nil {
		if !errors.Is(err, ErrNotAuth) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v for %q", err, input)
		}
		if ev.Kind != "" {
			t.Fatalf("error %v with kind %q for %q", err, ev.Kind, input)
		}
		return
	}
	if ev.Kind == "" {
		t.Fatalf("no kind for %q", input)
	}
	for _, s := range []string{ev.User, ev.TargetUser, ev.Method, ev.Detail, ev.Host, ev.Program} {
		if !strings.Contains(input, s) && !constants[s] {
			t.Fatalf("field %q not in input %q", s, input)
		}
	}
	if ev.Port < 0 || ev.Port > 65535 || ev.Count < 0 {
		t.Fatalf("port %d count %d for %q", ev.Port, ev.Count, input)
	}
	if ev.Addr.IsValid() && ev.Addr.Is4In6() {
		t.Fatalf("mapped address %v for %q", ev.Addr, input)
	}
}

func seedFromTable(f *testing.F) []tableCase {
	cases := readTable(f, "cases.txt", 1)
	for _, c := range cases {
		f.Add(c.fields[0])
	}
	return cases
}

func FuzzParseLine(f *testing.F) {
	seedFromTable(f)
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := newParser().ParseLine(line)
		checkInvariants(t, line, ev, err)
		if err == nil && ev.Line != line {
			t.Fatalf("Line %q != input %q", ev.Line, line)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	for _, c := range readTable(f, "journald.txt", 3) {
		f.Add(c.fields[0], c.fields[2])
	}
	for _, c := range readTable(f, "cases.txt", 1) {
		// Reuse the syslog cases' messages under their program name.
		line := c.fields[0]
		if i := strings.Index(line, ": "); i > 0 {
			prog := line[:i]
			if j := strings.LastIndexByte(prog, ' '); j >= 0 {
				prog = prog[j+1:]
			}
			if k := strings.IndexByte(prog, '['); k > 0 {
				prog = prog[:k]
			}
			f.Add(prog, line[i+2:])
		}
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, program, msg string) {
		ev, err := ParseMessage(ts, "h", program, 1, msg)
		if errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseMessage has no header to be malformed: %q", msg)
		}
		checkInvariants(t, msg+" "+program+" h", ev, err)
	})
}
