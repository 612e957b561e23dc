package schema

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every file under examples/ that picket reads must be valid: operators
// copy them.
func TestExamples(t *testing.T) {
	repo := filepath.Join("..", "examples", "config-repo")
	if err := ValidateDir(repo, ""); err != nil {
		t.Fatalf("examples/config-repo:\n%v", err)
	}
	hosts, err := filepath.Glob(filepath.Join(repo, "hosts", "*.cue"))
	if err != nil || len(hosts) == 0 {
		t.Fatalf("no host overrides in the example (%v)", err)
	}
	fleet, err := LoadDir(repo, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet.Whitelist.AdminIPs) == 0 || len(fleet.Whitelist.Users) == 0 {
		t.Errorf("example whitelists not loaded: %+v", fleet.Whitelist)
	}
	for _, h := range hosts {
		name := strings.TrimSuffix(filepath.Base(h), ".cue")
		if err := ValidateDir(repo, name); err != nil {
			t.Errorf("host %s:\n%v", name, err)
		}
		if _, err := LoadDir(repo, name); err != nil {
			t.Errorf("host %s: %v", name, err)
		}
	}
	web1, err := LoadDir(repo, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if web1.Mode != "enforce" || web1.Detectors.WebScan.MinHits != 5 || web1.Sensors.Web.Format != "combined" {
		t.Errorf("web1 override not applied: %+v", web1)
	}

	b, err := LoadBootstrap(filepath.Join("..", "examples", "bootstrap", "picket.cue"))
	if err != nil {
		t.Fatalf("examples/bootstrap/picket.cue:\n%v", err)
	}
	if b.Repository.URL == "" || b.Hostname != "web1" {
		t.Errorf("bootstrap example: %+v", b)
	}

	// Any other .cue file under examples/ is either a repository file or a
	// bootstrap file; catch one added without a test.
	err = filepath.WalkDir(filepath.Join("..", "examples"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".cue") {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("..", "examples"), path)
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, "config-repo/") && rel != "bootstrap/picket.cue" {
			t.Errorf("examples/%s is not covered by this test", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "trust", "allowed_signers")); err != nil {
		t.Error(err)
	}
}
