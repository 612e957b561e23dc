package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/picket-agent/picket/agent/event"
)

// copyTree copies testdata/proc (files and symlinks) so a test can change it.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "proc")
	if err := os.CopyFS(dst, os.DirFS("testdata/proc")); err != nil {
		// CopyFS refuses symlinks on some versions; fall back to cp -a.
		os.RemoveAll(dst)
		if out, err := exec.Command("cp", "-a", "testdata/proc", dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	return dst
}

func TestScannerDiff(t *testing.T) {
	root := copyTree(t)
	sc := newScanner(NewReader(root, nil), sourceScan)
	var got []event.Event
	send := func(ev event.Event) { got = append(got, ev) }

	if err := sc.scan(DetailInitial, true, send); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("initial scan: %d events, want 5", len(got))
	}
	for _, ev := range got {
		if ev.Kind != event.ProcExec || ev.Detail != DetailInitial || ev.Source != sourceScan {
			t.Errorf("initial: %+v", ev)
		}
	}

	// Unchanged tree: nothing.
	got = nil
	if err := sc.scan(DetailScan, false, send); err != nil || len(got) != 0 {
		t.Fatalf("unchanged: %v %+v", err, got)
	}

	// 100 exits, 500 appears, 300's pid is reused (new start time), 2
	// execs in place (comm changes).
	must(t, os.RemoveAll(filepath.Join(root, "100")))
	must(t, os.CopyFS(filepath.Join(root, "500"), os.DirFS(filepath.Join(root, "400"))))
	must(t, os.WriteFile(filepath.Join(root, "500", "stat"),
		[]byte("500 (new) S 1 500 500 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9000 0 0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "300", "stat"),
		[]byte("300 (bash) S 1 300 300 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 8000 0 0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "2", "stat"),
		[]byte("2 (renamed) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0\n"), 0o644))
	got = nil
	if err := sc.scan(DetailScan, false, send); err != nil {
		t.Fatal(err)
	}
	type key struct {
		kind  event.Kind
		pid   int
		start uint64
	}
	seen := map[key]bool{}
	for _, ev := range got {
		if ev.Detail != DetailScan {
			t.Errorf("detail %q", ev.Detail)
		}
		seen[key{ev.Kind, ev.PID, ev.Proc.StartTime}] = true
	}
	for _, k := range []key{
		{event.ProcExit, 100, 4242},
		{event.ProcExec, 500, 9000},
		{event.ProcExit, 300, 5},
		{event.ProcExec, 300, 8000},
		{event.ProcExec, 2, 24},
	} {
		if !seen[k] {
			t.Errorf("missing %+v in %d events", k, len(got))
		}
	}
	if len(got) != 5 {
		t.Errorf("%d events, want 5", len(got))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
