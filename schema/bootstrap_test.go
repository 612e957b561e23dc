package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBootstrapDefault(t *testing.T) {
	b := BootstrapDefault()
	host, _ := os.Hostname()
	want := Bootstrap{
		Hostname: host,
		Repository: Repository{Branch: "main", Verify: "first-parent", KnownHosts: "/etc/picket/known_hosts",
			Interval: Duration(time.Minute), BatchSize: 500, HostKey: "/etc/picket/host_key"},
		TrustDir:    "/etc/picket/trust",
		StateDir:    "/var/lib/picket",
		Credentials: "/etc/picket/credentials",
	}
	if b != want {
		t.Fatalf("got %+v, want %+v", b, want)
	}
	// The fallback used if the schema could not be compiled must agree.
	d, err := bootstrapDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d.Hostname = host
	if d != want {
		t.Fatalf("schema defaults %+v differ from %+v", d, want)
	}
}

func TestLoadBootstrapMissing(t *testing.T) {
	b, err := LoadBootstrap(filepath.Join(t.TempDir(), "picket.cue"))
	if err != nil {
		t.Fatal(err)
	}
	if *b != BootstrapDefault() {
		t.Fatalf("got %+v", b)
	}
}

func TestLoadBootstrap(t *testing.T) {
	b, err := LoadBootstrap("testdata/bootstrap/full.cue")
	if err != nil {
		t.Fatal(err)
	}
	want := Bootstrap{
		Hostname: "web1",
		Repository: Repository{URL: "git@git.example.com:ops/picket-config.git", Branch: "production", Verify: "first-parent",
			KnownHosts: "/etc/picket/known_hosts", Interval: Duration(time.Minute), BatchSize: 500, HostKey: "/etc/picket/host_key"},
		TrustDir:    "/etc/picket/trust",
		StateDir:    "/srv/picket",
		Credentials: "/etc/picket/deploy_key",
	}
	if *b != want {
		t.Fatalf("got %+v", b)
	}

	b, err = LoadBootstrap("testdata/bootstrap/partial.cue")
	if err != nil {
		t.Fatal(err)
	}
	def := BootstrapDefault()
	def.Repository.URL = "https://git.example.com/ops/picket-config.git"
	if *b != def {
		t.Fatalf("partial: got %+v, want %+v", b, def)
	}
}

func TestLoadBootstrapInvalid(t *testing.T) {
	path := "testdata/bootstrap/bad.cue"
	_, err := LoadBootstrap(path)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{
		path + ":4:2: repository.brnch: unknown field",
		path + `:6:12: state_dir: invalid value "var/lib/picket" (must be an absolute path)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
