package schema

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// readHost returns the host a bad case is validated for ("" = all).
func readHost(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "host.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestGoodRepos(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/good/*")
	if len(dirs) == 0 {
		t.Fatal("no good cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if err := ValidateDir(dir, ""); err != nil {
				t.Fatalf("ValidateDir: %v", err)
			}
			if _, err := LoadDir(dir, "any-host"); err != nil {
				t.Fatalf("LoadDir: %v", err)
			}
		})
	}
}

func TestBadRepos(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/bad/*")
	if len(dirs) == 0 {
		t.Fatal("no bad cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			err = ValidateDir(dir, readHost(t, dir))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v (%T), want a *ValidationError", err, err)
			}
			for _, is := range ve.Issues {
				if is.File == "" || is.Line < 1 || is.Column < 1 {
					t.Errorf("issue without position: %+v", is)
				}
				if strings.HasPrefix(is.File, schemaFile) {
					t.Errorf("issue placed in the schema, not in the repository: %v", is)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				if !strings.Contains(err.Error(), line) {
					t.Errorf("error does not contain %q:\n%v", line, err)
				}
			}
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	err := ValidateDir("testdata/bad/ttl-above-max", "")
	want := "picket.cue:3:19: actions.containment_ttl: 3h must be at most actions.max_ttl (2h)"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	var ve *ValidationError
	errors.As(err, &ve)
	got := ve.Issues[0]
	if got != (Issue{File: "picket.cue", Line: 3, Column: 19, Path: "actions.containment_ttl",
		Message: "3h must be at most actions.max_ttl (2h)"}) {
		t.Fatalf("issue %+v", got)
	}
}

func TestEmptyRepoIsDefault(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"testdata/good/empty", "testdata/good/empty-file"} {
		p, err := LoadDir(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, def) {
			t.Errorf("%s: got %+v, want the default %+v", dir, p, def)
		}
	}
}

// TestDefaultComplete: every setting of the default policy has a usable
// value, so the agent can run on it alone.
func TestDefaultComplete(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		case reflect.Map:
			// Whitelists are empty by default: nobody is trusted blindly.
		case reflect.Bool:
		default:
			if v.IsZero() {
				t.Errorf("%s is zero in the default policy", path)
			}
			if v.Kind() == reflect.Slice {
				for i := range v.Len() {
					if v.Index(i).IsZero() {
						t.Errorf("%s[%d] is zero", path, i)
					}
				}
			}
		}
	}
	walk(reflect.ValueOf(*p), "Policy")

	// Spot-check the values others rely on.
	if p.Mode != "enforce" || p.Learning.Period.D() != 48*time.Hour ||
		p.Levels != (Levels{Observe: 20, Contain: 50, Aggressive: 100, Lockdown: 150}) ||
		p.Detectors.SSHBruteForce.MaxFailures != 5 || p.Detectors.SSHBruteForce.Window.D() != 10*time.Minute ||
		p.Actions.MaxTTL.D() != 24*time.Hour || p.Actions.ContainmentTTL.D() != 30*time.Minute ||
		p.Sensors.Auth.Source != "auto" || p.Sensors.Web.Format != "auto" {
		t.Errorf("unexpected defaults: %+v", p)
	}
}

func TestHostOverrideMerge(t *testing.T) {
	fleet, err := LoadDir("testdata/merge", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadDir("testdata/merge", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if fleet.Mode != "observe" || p.Mode != "enforce" {
		t.Errorf("scalar: fleet %q, web1 %q", fleet.Mode, p.Mode)
	}
	if p.Levels.Observe != 30 || p.Levels.Contain != 40 || p.Levels.Aggressive != 100 {
		t.Errorf("struct merge: %+v", p.Levels)
	}
	if ws := p.Detectors.WebScan; ws.MinHits != 20 || !reflect.DeepEqual(ws.Paths, []string{"/.git/"}) {
		t.Errorf("list replace: %+v", ws)
	}
	if got := p.Sensors.Web.Files; !reflect.DeepEqual(got, []string{"/srv/www/logs/access.log", "/srv/api/logs/access.log"}) {
		t.Errorf("web files %v", got)
	}
	wantWL := map[string]WhitelistIP{
		"office":  {CIDR: "203.0.113.0/24", Note: "office (moved)"},
		"bastion": {CIDR: "198.51.100.7"},
	}
	if !reflect.DeepEqual(p.Whitelist.AdminIPs, wantWL) {
		t.Errorf("whitelist merge: %+v", p.Whitelist.AdminIPs)
	}

	db, err := LoadDir("testdata/merge", "db1")
	if err != nil {
		t.Fatal(err)
	}
	if db.Sensors.Web.Enabled || !reflect.DeepEqual(db.Sensors.Web.Files, fleet.Sensors.Web.Files) || db.Mode != "observe" {
		t.Errorf("db1: %+v", db.Sensors.Web)
	}
	// A host without a file gets the fleet policy.
	other, err := LoadDir("testdata/merge", "nosuchhost")
	if err != nil || !reflect.DeepEqual(other, fleet) {
		t.Errorf("host without override: %v %+v", err, other)
	}
	if err := ValidateDir("testdata/merge", ""); err != nil {
		t.Error(err)
	}
}

// The git sync loads from a tree, not a directory.
func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"picket.cue":            {Data: []byte("mode: \"observe\"\n")},
		"whitelists/u.cue":      {Data: []byte("whitelist: users: deploy: note: \"CI\"\n")},
		"hosts/web1.cue":        {Data: []byte("mode: \"enforce\"\n")},
		"trust/allowed_signers": {Data: []byte("# none\n")},
	}
	p, err := LoadFS(fsys, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != "enforce" || p.Whitelist.Users["deploy"] != (WhitelistUser{Name: "deploy", Note: "CI"}) {
		t.Errorf("got %+v", p)
	}
	fsys["hosts/web1.cue"] = &fstest.MapFile{Data: []byte("mode: \"block\"\n")}
	if _, err := LoadFS(fsys, "web1"); err == nil || !strings.Contains(err.Error(), "hosts/web1.cue:1:7: mode:") {
		t.Errorf("bad host file: %v", err)
	}
	// Other hosts are unaffected by a broken override.
	if _, err := LoadFS(fsys, "web2"); err != nil {
		t.Error(err)
	}
}

func TestLoadDirMissing(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "nope"), "")
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

// Loads run concurrently (the agent reloads while `picket validate` runs
// in tests); each call has its own CUE context.
func TestConcurrentLoads(t *testing.T) {
	done := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := LoadDir("testdata/merge", "web1")
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
