package ci

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// directive is one Key=Value line of a unit file.
type directive struct {
	section, key, value string
	line                int
	commented           bool // a comment line stands between it and the previous directive
}

type unitFile struct {
	path       string
	directives []directive
}

// parseUnit reads a unit file the way systemd does for what matters here:
// [Section] headers, Key=Value lines, '#' and ';' comments, trailing
// backslash continuations.
func parseUnit(path string) (*unitFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &unitFile{path: path}
	sc := bufio.NewScanner(f)
	section, n, commented := "", 0, false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		start := n
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "":
		case line[0] == '#' || line[0] == ';':
			commented = true
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: bad section header %q", path, start, line)
			}
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not Key=Value in a section: %q", path, start, line)
			}
			u.directives = append(u.directives, directive{section, strings.TrimSpace(k), strings.TrimSpace(v), start, commented})
			commented = false
		}
	}
	return u, sc.Err()
}

// get returns the last value of section.key ("" when unset), as systemd
// lets the last assignment win.
func (u *unitFile) get(section, key string) string {
	v := ""
	for _, d := range u.directives {
		if d.section == section && d.key == key {
			v = d.value
		}
	}
	return v
}

func (u *unitFile) has(section, key string) bool {
	return slices.ContainsFunc(u.directives, func(d directive) bool { return d.section == section && d.key == key })
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

func exampleUnit(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "examples", "systemd", "picket.service")
}

// TestSystemdUnitDirectives pins what the agent's lifecycle needs and
// forbids the sandboxing options that would blind a sensor or block an
// action (see the comments in the unit).
func TestSystemdUnitDirectives(t *testing.T) {
	u, err := parseUnit(exampleUnit(t))
	if err != nil {
		t.Fatal(err)
	}

	exact := []struct{ section, key, want string }{
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "ExecStart", "/usr/local/bin/picket run"}, // install.sh rewrites exactly this
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "on-failure"},
		{"Service", "KillMode", "mixed"},
		{"Service", "StateDirectory", "picket"},
		{"Service", "StateDirectoryMode", "0700"},
		{"Service", "ConfigurationDirectory", "picket"},
		{"Service", "ProtectSystem", "yes"}, // not full/strict: usermod writes /etc
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, e := range exact {
		if got := u.get(e.section, e.key); got != e.want {
			t.Errorf("[%s] %s=%q, want %q", e.section, e.key, got, e.want)
		}
	}
	if u.get("Unit", "Description") == "" {
		t.Errorf("[Unit] Description= missing")
	}
	// Killed late by a host-wide OOM, but never unkillable: -1000 would
	// also exempt it from its own MemoryMax= (see the unit's comment).
	if v, err := strconv.Atoi(u.get("Service", "OOMScoreAdjust")); err != nil || v <= -1000 || v >= 0 {
		t.Errorf("[Service] OOMScoreAdjust=%q: want a value in (-1000, 0) (%v)", u.get("Service", "OOMScoreAdjust"), err)
	}

	durations := []struct {
		key      string
		min, max time.Duration
	}{
		{"WatchdogSec", 10 * time.Second, 5 * time.Minute},
		{"RestartSec", time.Second, time.Minute},
		{"TimeoutStopSec", 5 * time.Second, 5 * time.Minute},
	}
	for _, d := range durations {
		v := u.get("Service", d.key)
		got, err := time.ParseDuration(v)
		if err != nil || got < d.min || got > d.max {
			t.Errorf("[Service] %s=%q: want a duration in [%v, %v] (%v)", d.key, v, d.min, d.max, err)
		}
	}

	// Each would hide part of the host from the sensors, or stop an action.
	forbidden := []struct {
		key string
		bad func(string) bool
		why string
	}{
		{"ProtectHome", func(v string) bool { return !strings.EqualFold(v, "no") && !strings.EqualFold(v, "false") }, "hides authorized_keys and shell profiles"},
		{"PrivateTmp", truthy, "the agent would watch a private, empty /tmp"},
		{"ProtectSystem", func(v string) bool { return v == "full" || v == "strict" }, "/etc read-only: usermod cannot disable a user"},
		{"ProtectKernelModules", truthy, "hides /usr/lib/modules from file integrity"},
		{"ProtectProc", func(v string) bool { return v != "" && v != "default" }, "hides other processes"},
		{"ProcSubset", func(v string) bool { return v == "pid" }, "hides /proc/net and /proc/sys"},
		{"PrivateDevices", truthy, "no host devices"},
		{"PrivateNetwork", truthy, "no host network: blind network sensors, no nftables"},
		{"PrivateUsers", truthy, "not root on the host"},
		{"DynamicUser", truthy, "not root"},
		{"User", func(v string) bool { return v != "" && v != "root" && v != "0" }, "the agent runs as root"},
		{"IOSchedulingClass", func(v string) bool { return v == "idle" || v == "3" }, "SQLite commits could starve and trip the watchdog"},
		{"RestartPreventExitStatus", func(v string) bool { return slices.Contains(strings.Fields(v), "2") }, "Go panics and the watchdog's SIGABRT exit with 2"},
		{"InaccessiblePaths", func(v string) bool { return v != "" }, "hides paths from the sensors"},
		{"TemporaryFileSystem", func(v string) bool { return v != "" }, "hides paths from the sensors"},
		{"CPUQuota", func(v string) bool { return v != "" }, "throttles detection during an attack"},
	}
	for _, f := range forbidden {
		for _, d := range u.directives {
			if d.key == f.key && f.bad(d.value) {
				t.Errorf("%s:%d: %s=%s: %s", u.path, d.line, d.key, d.value, f.why)
			}
		}
	}

	// The capability bounding set must keep what sensors and actions use.
	needed := []string{
		"CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE",
		"CAP_DAC_READ_SEARCH", "CAP_CHOWN", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID",
		"CAP_SYS_ADMIN", "CAP_AUDIT_WRITE",
	}
	for _, d := range u.directives {
		if d.key != "CapabilityBoundingSet" {
			continue
		}
		v := d.value
		if rest, ok := strings.CutPrefix(v, "~"); ok {
			for _, c := range needed {
				if slices.Contains(strings.Fields(rest), c) {
					t.Errorf("%s:%d: CapabilityBoundingSet removes %s", u.path, d.line, c)
				}
			}
			continue
		}
		for _, c := range needed {
			if !slices.Contains(strings.Fields(v), c) {
				t.Errorf("%s:%d: CapabilityBoundingSet lacks %s", u.path, d.line, c)
			}
		}
	}

	// Every directive says why it is there, and none is set twice.
	seen := map[string]int{}
	for _, d := range u.directives {
		if !d.commented {
			t.Errorf("%s:%d: %s= has no comment above it explaining why", u.path, d.line, d.key)
		}
		id := d.section + "." + d.key
		if prev, ok := seen[id]; ok && d.key != "Environment" {
			t.Errorf("%s:%d: %s= already set on line %d", u.path, d.line, d.key, prev)
		}
		seen[id] = d.line
	}
}

// TestSystemdUnitVerify runs systemd-analyze verify on the unit, with
// ExecStart= pointing at an existing executable (the test binary). It
// works without systemd as PID 1 and without root; warnings such as an
// unknown or misspelt key only go to stderr with exit status 0, so any
// message about the unit fails the test.
func TestSystemdUnitVerify(t *testing.T) {
	sa := integration.Binary(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil || strings.ContainsAny(self, " \t\\\"'$%") {
		t.Skipf("test binary path %q (%v) cannot go into a unit file", self, err)
	}

	verify := func(dir, name, content string) (string, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sa, "verify", "--man=no", p)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Can verify work at all here? A trivially valid unit tells.
	probe := fmt.Sprintf("[Unit]\nDescription=probe\n[Service]\nType=notify\nExecStart=%s\n[Install]\nWantedBy=multi-user.target\n", self)
	if out, err := verify(t.TempDir(), "probe.service", probe); err != nil {
		integration.Skip(t, fmt.Sprintf("systemd-analyze verify does not work here (%v): %s", err, out))
	}

	src, err := os.ReadFile(exampleUnit(t))
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Replace(string(src), "\nExecStart=/usr/local/bin/picket ", "\nExecStart="+self+" ", 1)
	if !strings.Contains(content, "\nExecStart="+self+" ") {
		t.Fatal("unit has no 'ExecStart=/usr/local/bin/picket ...' line")
	}
	if _, err := os.Stat("/bin/kill"); err != nil {
		// Minimal images without procps: check the rest of the unit.
		content = strings.ReplaceAll(content, "\nExecReload=/bin/kill ", "\nExecReload="+self+" ")
	}
	dir := t.TempDir()
	out, err := verify(dir, "picket.service", content)
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Lines about other units on this machine are not ours to judge.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "picket.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
