package selftest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.log")
	os.WriteFile(auth, nil, 0o600)
	res := Run(context.Background(), Options{StateDir: filepath.Join(dir, "state"), AuthFiles: []string{auth}, WebFiles: []string{filepath.Join(dir, "absent.log")}})
	got := map[string]Result{}
	for _, r := range res {
		if r.State != OK && r.State != Degraded && r.State != Missing || r.Reason == "" {
			t.Errorf("bad result %+v", r)
		}
		got[r.Name] = r
	}
	if got["state-dir"].State != OK || got["auth-log-files"].State != OK || got["web-log-files"].State != Degraded || got["proc"].State != OK {
		t.Errorf("results %+v", got)
	}
	wantRoot := Degraded
	if os.Geteuid() == 0 {
		wantRoot = OK
	}
	if got["root"].State != wantRoot {
		t.Errorf("root: %+v", got["root"])
	}
	// An unwritable state directory is missing, not fatal.
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	res = Run(context.Background(), Options{StateDir: filepath.Join(f, "sub")})
	for _, r := range res {
		if r.Name == "state-dir" && r.State != Missing {
			t.Errorf("state dir under a file: %+v", r)
		}
	}
}
