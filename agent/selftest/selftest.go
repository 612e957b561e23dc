// Package selftest probes what this host lets the agent do: root, the
// capabilities it needs, journald, the log files, the state directory. The
// agent runs the same probes at start to decide which sensors run degraded,
// and `picket selftest` prints them as a table.
package selftest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// States of a capability.
const (
	OK       = "ok"
	Degraded = "degraded"
	Missing  = "missing"
)

// Result is one probe's outcome.
type Result struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// Options name what to probe.
type Options struct {
	StateDir   string
	AuthFiles  []string
	WebFiles   []string
	Journalctl string // default "journalctl"
}

// Run probes everything and returns the results in a fixed order.
func Run(ctx context.Context, o Options) []Result {
	var out []Result
	out = append(out, rootProbe())
	out = append(out, capProbe()...)
	out = append(out, procProbe())
	out = append(out, stateProbe(o.StateDir))
	out = append(out, journalProbe(ctx, o.Journalctl))
	out = append(out, filesProbe("auth-log-files", o.AuthFiles, "no auth log file readable; auth sensor needs journald"))
	out = append(out, filesProbe("web-log-files", o.WebFiles, "no web access log readable; web sensor idle until one appears"))
	out = append(out, notifyProbe())
	return out
}

func rootProbe() Result {
	if os.Geteuid() == 0 {
		return Result{"root", OK, "running as root"}
	}
	return Result{"root", Degraded, fmt.Sprintf("running as uid %d: actions and privileged sensors are off, detection from readable logs still runs", os.Geteuid())}
}

func procProbe() Result {
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		return Result{"proc", Missing, "/proc not readable: " + err.Error()}
	}
	return Result{"proc", OK, "/proc readable"}
}

func stateProbe(dir string) Result {
	if dir == "" {
		return Result{"state-dir", Missing, "no state directory given"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{"state-dir", Missing, fmt.Sprintf("cannot create %s: %v", dir, err)}
	}
	f, err := os.CreateTemp(dir, ".selftest-*")
	if err != nil {
		return Result{"state-dir", Missing, fmt.Sprintf("%s not writable: %v", dir, err)}
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return Result{"state-dir", OK, dir + " writable"}
}

func journalProbe(ctx context.Context, journalctl string) Result {
	if journalctl == "" {
		journalctl = "journalctl"
	}
	path, err := exec.LookPath(journalctl)
	if err != nil {
		return Result{"journald", Degraded, "journalctl not found: auth sensor uses log files"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-n", "1", "-o", "json", "--no-pager", "-q").CombinedOutput()
	if err != nil {
		return Result{"journald", Degraded, fmt.Sprintf("journalctl failed: %v: %s", err, firstLine(out))}
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return Result{"journald", Degraded, "journal readable but empty (no journald running?): auth sensor uses log files"}
	}
	return Result{"journald", OK, "journal readable via " + path}
}

func filesProbe(name string, files []string, none string) Result {
	var ok, bad []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			bad = append(bad, filepath.Base(f))
			continue
		}
		fh.Close()
		ok = append(ok, f)
	}
	if len(ok) == 0 {
		return Result{name, Degraded, none}
	}
	return Result{name, OK, "readable: " + strings.Join(ok, ", ")}
}

func notifyProbe() Result {
	if s := os.Getenv("NOTIFY_SOCKET"); s != "" {
		return Result{"systemd-notify", OK, "NOTIFY_SOCKET=" + s}
	}
	return Result{"systemd-notify", Degraded, "not started by systemd (no NOTIFY_SOCKET): no readiness or watchdog notifications"}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
