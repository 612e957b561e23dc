package ci

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-agent/picket/internal/integration"
)

// repoRoot is the repository checkout the tests run in (go test runs them
// in ci/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "install.sh")); err != nil {
		t.Fatalf("install.sh not found in %s: %v", root, err)
	}
	return root
}

type runResult struct {
	code int
	out  string
}

// scriptEnv is the environment without the variables install.sh reads, so
// the caller's shell cannot steer a test into the real system.
func scriptEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DESTDIR", "PREFIX", "GO":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runScript runs bash script args... with env, from a neutral directory.
func runScript(t *testing.T, bash, script string, env []string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(bash, append([]string{script}, args...)...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	b, err := cmd.CombinedOutput()
	res := runResult{out: string(b)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("running %s %v: %v", script, args, err)
	}
	return res
}

func wantCode(t *testing.T, r runResult, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d; output:\n%s", r.code, code, r.out)
	}
}

func wantOutput(t *testing.T, r runResult, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.out, s) {
			t.Errorf("output lacks %q:\n%s", s, r.out)
		}
	}
}

func wantMode(t *testing.T, path string, dir bool, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if fi.IsDir() != dir || (!dir && !fi.Mode().IsRegular()) {
		t.Errorf("%s: type %v, want directory=%v", path, fi.Mode().Type(), dir)
	}
	if got := fi.Mode().Perm(); got != mode {
		t.Errorf("%s: mode %04o, want %04o", path, got, mode)
	}
}

func wantAbsent(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: want it absent, stat: %v", p, err)
		}
	}
}

func wantNoTempFiles(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, ".picket*"))
		if len(m) > 0 {
			t.Errorf("temporary files left behind: %v", m)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// layout is where install.sh puts things under a DESTDIR.
type layout struct {
	dest, binary, stop, unit, confDir, bootstrap, trust, state string
}

func layoutFor(dest, prefix string) layout {
	return layout{
		dest:      dest,
		binary:    filepath.Join(dest, prefix, "bin", "picket"),
		stop:      filepath.Join(dest, prefix, "sbin", "picket-emergency-stop"),
		unit:      filepath.Join(dest, "etc", "systemd", "system", "picket.service"),
		confDir:   filepath.Join(dest, "etc", "picket"),
		bootstrap: filepath.Join(dest, "etc", "picket", "picket.cue"),
		trust:     filepath.Join(dest, "etc", "picket", "trust"),
		state:     filepath.Join(dest, "var", "lib", "picket"),
	}
}

// checkInstalled checks every file and mode of an installation with the
// given prefix, and that the binary is a copy of bin.
func checkInstalled(t *testing.T, l layout, prefix, bin string) {
	t.Helper()
	wantMode(t, l.binary, false, 0o755)
	wantMode(t, l.stop, false, 0o755)
	if got, want := readFile(t, l.stop), readFile(t, filepath.Join(repoRoot(t), "actions", "emergency", "picket-emergency-stop.sh")); got != want {
		t.Errorf("%s is not the emergency-stop script", l.stop)
	}
	wantMode(t, l.unit, false, 0o644)
	wantMode(t, l.confDir, true, 0o700)
	wantMode(t, l.trust, true, 0o700)
	wantMode(t, l.state, true, 0o700)
	wantMode(t, l.bootstrap, false, 0o600)
	if got, want := readFile(t, l.binary), readFile(t, bin); got != want {
		t.Errorf("%s is not a copy of %s", l.binary, bin)
	}
	wantNoTempFiles(t, filepath.Dir(l.binary), filepath.Dir(l.unit), l.confDir)

	u, err := parseUnit(l.unit)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.get("Service", "ExecStart"), prefix+"/bin/picket run"; got != want {
		t.Errorf("installed unit: ExecStart=%q, want %q", got, want)
	}
	if got := u.get("Service", "Type"); got != "notify" {
		t.Errorf("installed unit: Type=%q, want notify", got)
	}
	if got := u.get("Service", "WatchdogSec"); got == "" {
		t.Errorf("installed unit: no WatchdogSec=")
	}
}

// validateBootstrap runs the installed binary's own check on the file.
func validateBootstrap(t *testing.T, bin, file string) {
	t.Helper()
	out, err := exec.Command(bin, "validate", "--bootstrap", file).CombinedOutput()
	if err != nil {
		t.Errorf("picket validate --bootstrap %s: %v\n%s", file, err, out)
	}
}

// TestInstallScript installs into a DESTDIR, re-runs, uninstalls and purges,
// checking every file, mode and message on the way.
func TestInstallScript(t *testing.T) {
	bash := integration.Binary(t, "bash")
	root := repoRoot(t)
	script := filepath.Join(root, "install.sh")
	bin := integration.BuildPicket(t)
	unitSrc := readFile(t, filepath.Join(root, "examples", "systemd", "picket.service"))

	dest := t.TempDir()
	l := layoutFor(dest, "/usr/local")
	env := scriptEnv("DESTDIR=" + dest)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // later steps build on this one
		}
	}

	step("help", func(t *testing.T) {
		r := runScript(t, bash, script, env, "--help")
		wantCode(t, r, 0)
		wantOutput(t, r, "Usage:", "--binary PATH", "--uninstall", "--purge", "--no-start", "DESTDIR")
	})

	step("usage errors", func(t *testing.T) {
		wantCode(t, runScript(t, bash, script, env, "--bogus"), 2)
		wantCode(t, runScript(t, bash, script, env, "--binary"), 2)
		wantCode(t, runScript(t, bash, script, env, "--prefix", "relative/dir"), 2)
		wantAbsent(t, l.binary, l.unit, l.confDir, l.state)
	})

	step("refuses to change the system unless root", func(t *testing.T) {
		testRefusesNonRoot(t, bash, script)
	})

	step("no Go and no binary", func(t *testing.T) {
		d := t.TempDir()
		r := runScript(t, bash, script, scriptEnv("DESTDIR="+d, "GO=/nonexistent/go"))
		wantCode(t, r, 1)
		wantOutput(t, r, "Go toolchain", "--binary")
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("failed install left files in DESTDIR: %v", ents)
		}
	})

	step("bad binary", func(t *testing.T) {
		notExec := filepath.Join(t.TempDir(), "picket")
		if err := os.WriteFile(notExec, []byte("not a binary"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runScript(t, bash, script, env, "--binary", notExec)
		wantCode(t, r, 1)
		wantOutput(t, r, "not an executable file")
		wantAbsent(t, l.binary, l.unit, l.confDir, l.state)
	})

	step("install", func(t *testing.T) {
		r := runScript(t, bash, script, env, "--binary", bin)
		wantCode(t, r, 0)
		checkInstalled(t, l, "/usr/local", bin)
		// With the default prefix the unit is the example, byte for byte.
		if got := readFile(t, l.unit); got != unitSrc {
			t.Errorf("installed unit differs from examples/systemd/picket.service")
		}
		validateBootstrap(t, l.binary, l.bootstrap)
		// DESTDIR: systemd is left alone, the operator is told what to do.
		wantOutput(t, r, "systemctl daemon-reload", "systemctl enable --now picket", "wrote default")
	})

	step("default bootstrap", func(t *testing.T) {
		b := readFile(t, l.bootstrap)
		for _, line := range strings.Split(b, "\n") {
			s := strings.TrimSpace(line)
			if s != "" && !strings.HasPrefix(s, "//") {
				t.Errorf("default bootstrap sets %q; every field should stay at its default (commented out)", s)
			}
		}
		for _, field := range []string{"hostname", "repository", "trust_dir", "state_dir", "credentials"} {
			if !strings.Contains(b, "// "+field+":") {
				t.Errorf("default bootstrap does not document %s", field)
			}
		}
	})

	edited := "// the operator's own\nhostname: \"edited-host\"\n"
	step("second run keeps an edited bootstrap", func(t *testing.T) {
		if err := os.WriteFile(l.bootstrap, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runScript(t, bash, script, env, "--binary", bin)
		wantCode(t, r, 0)
		wantOutput(t, r, "kept existing")
		if got := readFile(t, l.bootstrap); got != edited {
			t.Errorf("bootstrap overwritten:\n%s", got)
		}
		checkInstalled(t, l, "/usr/local", bin)
	})

	step("invalid bootstrap stops the install before any change", func(t *testing.T) {
		bad := "hostname: \"not a host name\"\n"
		if err := os.WriteFile(l.bootstrap, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(l.unit); err != nil {
			t.Fatal(err)
		}
		r := runScript(t, bash, script, env, "--binary", bin)
		wantCode(t, r, 3)
		wantOutput(t, r, "picket.cue", "nothing was changed")
		wantAbsent(t, l.unit)
		if got := readFile(t, l.bootstrap); got != bad {
			t.Errorf("bootstrap changed:\n%s", got)
		}
		// Repair, and the install completes again.
		if err := os.WriteFile(l.bootstrap, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		wantCode(t, runScript(t, bash, script, env, "--binary", bin), 0)
		checkInstalled(t, l, "/usr/local", bin)
	})

	step("prefix rewrites ExecStart", func(t *testing.T) {
		d := t.TempDir()
		lp := layoutFor(d, "/opt/picket")
		r := runScript(t, bash, script, scriptEnv("DESTDIR="+d, "PREFIX=/opt/picket"), "--binary", bin)
		wantCode(t, r, 0)
		checkInstalled(t, lp, "/opt/picket", bin)
		// Only the ExecStart= line differs from the example.
		want := strings.Replace(unitSrc, "\nExecStart=/usr/local/bin/picket run\n", "\nExecStart=/opt/picket/bin/picket run\n", 1)
		if got := readFile(t, lp.unit); got != want {
			t.Errorf("unit installed with PREFIX=/opt/picket differs from the example in more than ExecStart=")
		}
		// The flag form, and --destdir instead of DESTDIR.
		d2 := t.TempDir()
		r = runScript(t, bash, script, scriptEnv(), "--destdir", d2, "--prefix=/opt/p2/", "--binary", bin)
		wantCode(t, r, 0)
		checkInstalled(t, layoutFor(d2, "/opt/p2"), "/opt/p2", bin)
	})

	step("uninstall keeps config and state", func(t *testing.T) {
		trustKey := filepath.Join(l.trust, "allowed_signers")
		if err := os.WriteFile(trustKey, []byte("ops@example.com ssh-ed25519 AAAA\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for range 2 { // idempotent
			r := runScript(t, bash, script, env, "--uninstall")
			wantCode(t, r, 0)
			wantOutput(t, r, "kept", "--purge")
		}
		wantAbsent(t, l.binary, l.unit, l.stop)
		wantMode(t, l.confDir, true, 0o700)
		wantMode(t, l.trust, true, 0o700)
		wantMode(t, l.state, true, 0o700)
		if got := readFile(t, l.bootstrap); got != edited {
			t.Errorf("uninstall changed the bootstrap:\n%s", got)
		}
		if _, err := os.Stat(trustKey); err != nil {
			t.Errorf("uninstall removed a trusted key: %v", err)
		}
	})

	step("purge removes everything", func(t *testing.T) {
		wantCode(t, runScript(t, bash, script, env, "--binary", bin), 0) // reinstall first
		for range 2 {
			r := runScript(t, bash, script, env, "--purge")
			wantCode(t, r, 0)
			wantOutput(t, r, "purged")
		}
		wantAbsent(t, l.binary, l.unit, l.confDir, l.state)
	})
}

// testRefusesNonRoot runs install.sh without DESTDIR as an unprivileged
// user and expects a refusal. As root the test drops to nobody with
// setpriv; a copy of the script without the rest of the tree and a missing
// --binary make sure that even a broken privilege check could not change
// this machine.
func testRefusesNonRoot(t *testing.T, bash, script string) {
	dir, err := os.MkdirTemp("", "picket-install-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyScript := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(copyScript, []byte(readFile(t, script)), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{copyScript, "--binary", filepath.Join(dir, "missing")}

	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and setpriv (util-linux) is not installed: cannot check the non-root refusal")
		}
		drop := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
		if out, err := exec.Command(setpriv, append(drop, "id", "-u")...).Output(); err != nil || strings.TrimSpace(string(out)) != "65534" {
			t.Skipf("setpriv cannot drop to uid 65534 here (%v, %q)", err, out)
		}
		cmd = exec.Command(setpriv, append(append(drop, bash), args...)...)
	} else {
		cmd = exec.Command(bash, args...)
	}
	cmd.Env = scriptEnv()
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("non-root run without DESTDIR: %v, want exit status 1; output:\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("must run as root")) {
		t.Errorf("refusal does not say why:\n%s", out)
	}
}
