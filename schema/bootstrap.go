package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DefaultBootstrapPath is where the agent looks for its bootstrap file.
const DefaultBootstrapPath = "/etc/picket/picket.cue"

// BootstrapDefault is the bootstrap the agent runs with when it has no
// bootstrap file: no repository (the embedded default policy), the
// standard directories, and the kernel host name.
func BootstrapDefault() Bootstrap {
	b, err := bootstrapDefaults()
	if err != nil {
		// Unreachable with a tested schema; a host must still start.
		b = Bootstrap{
			Repository: Repository{Branch: "main", Verify: "first-parent", KnownHosts: "/etc/picket/known_hosts",
				Interval: Duration(60e9), BatchSize: 500, HostKey: "/etc/picket/host_key"},
			TrustDir:    "/etc/picket/trust",
			StateDir:    "/var/lib/picket",
			Credentials: "/etc/picket/credentials",
		}
	}
	fillHostname(&b)
	return b
}

func bootstrapDefaults() (Bootstrap, error) {
	var b Bootstrap
	c, err := compile()
	if err != nil {
		return b, err
	}
	v, issues := c.evaluate("Bootstrap", nil)
	if err := asError(issues); err != nil {
		return b, err
	}
	return b, v.Decode(&b)
}

// LoadBootstrap reads and validates the bootstrap file at path. A missing
// file is not an error: the agent runs with BootstrapDefault(). A file
// that does not validate is a *ValidationError whose issues name path as
// given.
func LoadBootstrap(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b := BootstrapDefault()
		return &b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	c, err := compile()
	if err != nil {
		return nil, err
	}
	f, issues := parseFile(path, data)
	if err := asError(issues); err != nil {
		return nil, err
	}
	uf, issues := c.build(path, f)
	if err := asError(issues); err != nil {
		return nil, err
	}
	v, issues := c.evaluate("Bootstrap", []userFile{uf})
	if err := asError(issues); err != nil {
		return nil, err
	}
	var b Bootstrap
	if err := v.Decode(&b); err != nil {
		return nil, asError(plainIssues(err, path))
	}
	// #Duration admits "0s" and "-1m"; the syncer would silently run
	// every minute instead.
	if d := b.Repository.Interval.D(); d <= 0 {
		return nil, asError([]Issue{locate([]userFile{uf}, at(ShortDuration(d)+" must be positive", "repository.interval"))})
	}
	fillHostname(&b)
	return &b, nil
}

// fillHostname uses the kernel host name when the file leaves it empty.
// If even that fails the name stays empty and the agent must refuse to
// sync, since it would not know its branch.
func fillHostname(b *Bootstrap) {
	if b.Hostname != "" {
		return
	}
	if h, err := os.Hostname(); err == nil {
		b.Hostname = h
	}
}
