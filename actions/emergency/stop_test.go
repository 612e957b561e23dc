package emergency

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStopFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadStop(dir); ok || err != nil {
		t.Fatalf("no file: ok=%v err=%v", ok, err)
	}
	if err := ClearStop(dir); err != nil {
		t.Fatalf("clear without file: %v", err)
	}
	at := time.Date(2026, 12, 2, 16, 0, 0, 0, time.FixedZone("x", 3600))
	if err := WriteStop(dir, at, "ops admin"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(StopFile(dir))
	if string(b) != "2026-12-02T15:00:00Z ops_admin\n" {
		t.Fatalf("content %q", b)
	}
	s, ok, err := ReadStop(dir)
	if !ok || err != nil || !s.At.Equal(at) || s.By != "ops_admin" {
		t.Fatalf("read: %+v ok=%v err=%v", s, ok, err)
	}
	if m, _ := filepath.Glob(filepath.Join(DirIn(dir), "stop.tmp*")); len(m) != 0 {
		t.Fatalf("temp files left: %v", m)
	}
	if err := ClearStop(dir); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ReadStop(dir); ok {
		t.Fatal("still stopped after clear")
	}
}

// TestStopFileGarbageStillStops: presence is what counts; a truncated or
// hand-written file must not let the agent carry on.
func TestStopFileGarbageStillStops(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(DirIn(dir), 0o700)
	for _, content := range []string{"", "stop!", "yesterday root\n"} {
		os.WriteFile(StopFile(dir), []byte(content), 0o600)
		s, ok, err := ReadStop(dir)
		if !ok || err != nil || !s.At.IsZero() {
			t.Fatalf("%q: %+v ok=%v err=%v", content, s, ok, err)
		}
		if s.String() == "" {
			t.Fatalf("%q: empty message", content)
		}
	}
}
