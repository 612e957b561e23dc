// Package integration decides what a test does when a real component it needs
// (root, a namespace, a binary such as sshd or journalctl, the shared data
// folder) is not available: skip with a clear message on a developer's
// machine, fail in CI where PICKET_REQUIRE_INTEGRATION=1 says everything must
// run. Every test that touches the real system goes through it.
package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvRequire is the variable that turns skips into failures.
const EnvRequire = "PICKET_REQUIRE_INTEGRATION"

// Required reports whether missing prerequisites must fail the test.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Skip skips the test with reason, or fails it when integration is required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("integration prerequisite missing (%s=1): %s", EnvRequire, reason)
	}
	t.Skip("skipping: " + reason)
}

// Root skips (or fails) unless the test runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// Binary returns the path of a binary, skipping (or failing) when it is not
// installed.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, name+" not installed: "+err.Error())
	}
	return p
}

// File returns path when it exists, skipping (or failing) otherwise; used for
// the shared third-party data (../shared/data) that a user's clone may lack.
func File(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Skip(t, "missing "+path+": "+err.Error())
	}
	return path
}

// BuildPicket builds ./cmd/picket of the module under test into a
// temporary directory and returns the binary's path (tests that run the
// real agent as a process).
func BuildPicket(t testing.TB) string {
	t.Helper()
	goBin := Binary(t, "go")
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil || len(mod) < 2 {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	out := filepath.Join(t.TempDir(), "picket")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./cmd/picket")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/picket: %v\n%s", err, b)
	}
	return out
}
