// Package journaldtest runs a real systemd-journald for tests, inside a
// private mount namespace so the host's journal is never touched: a tmpfs
// /run, the journal directory bound to a test directory, volatile storage,
// no kernel or audit access. Tests of the journal reader and the agent's
// end-to-end tests use it.
package journaldtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

type Journald struct {
	// Dir is where journald writes <machine-id>/system.journal; read it
	// with journalctl --directory=Dir from outside the namespace.
	Dir string
	// PID is journald's pid (host pid namespace); nsenter -t PID -m enters
	// its mount namespace, where it is the system journal.
	PID     int
	cmd     *exec.Cmd
	nsenter string
	logs    *bytes.Buffer
}

const journaldScript = `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/systemd/journald.conf.d /run/log/journal
mount --bind "$1" /run/log/journal
# Storage=volatile already keeps journald out of /var/log/journal; hide it
# anyway, in case a drop-in elsewhere says otherwise.
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
cp "$2" /run/systemd/journald.conf.d/zz-picket-test.conf
export SYSTEMD_LOG_TARGET=console
exec "$3" --bounding-set -audit_control,-audit_read,-audit_write "$4"
`

const journaldConf = `[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
Audit=no
`

// Start runs a private journald, skipping (or failing in CI) when root or
// the binaries are missing. It is stopped when the test ends.
func Start(t testing.TB) *Journald {
	t.Helper()
	integration.Root(t)
	unshare := integration.Binary(t, "unshare")
	nsenter := integration.Binary(t, "nsenter")
	setpriv := integration.Binary(t, "setpriv")
	integration.Binary(t, "systemd-cat")
	integration.Binary(t, "journalctl")
	integration.File(t, "/etc/machine-id")
	var journald string
	for _, p := range []string{"/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"} {
		if _, err := os.Stat(p); err == nil {
			journald = p
			break
		}
	}
	if journald == "" {
		integration.Skip(t, "systemd-journald not installed")
	}

	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "journald.conf")
	if err := os.WriteFile(conf, []byte(journaldConf), 0o644); err != nil {
		t.Fatal(err)
	}
	j := &Journald{Dir: dir, nsenter: nsenter, logs: &bytes.Buffer{}}
	// --kill-child: if unshare dies, journald dies with it, and with it
	// the namespace and its mounts.
	j.cmd = exec.Command(unshare, "--mount", "--propagation", "private", "--kill-child",
		"sh", "-c", journaldScript, "sh", dir, conf, setpriv, journald)
	j.cmd.Stdout, j.cmd.Stderr = j.logs, j.logs
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { j.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if j.PID > 0 {
			syscall.Kill(j.PID, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			j.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("journald output:\n%s", j.logs)
		}
	})

	upid := j.cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("journald exited: %s", j.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("journald did not start: %s", j.logs)
		}
		if j.PID == 0 {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", upid, upid)); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					j.PID, _ = strconv.Atoi(f[0])
				}
			}
		}
		// The journal file is opened after the sockets are listening.
		if m, _ := filepath.Glob(filepath.Join(dir, "*", "system.journal")); len(m) > 0 && j.PID > 0 {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", j.PID))
			if strings.HasSuffix(exe, "systemd-journald") {
				return j
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// log sends input to journald as identifier's stdout stream (one entry per
// line) and returns the sender's pid, which is the entries' _PID.
// Log writes input through systemd-cat -t identifier inside the namespace
// and returns systemd-cat's pid (the entries' _PID).
func (j *Journald) Log(t testing.TB, identifier, input string) int {
	t.Helper()
	// nsenter without -p/-f execs in place: its pid is systemd-cat's.
	cmd := exec.Command(j.nsenter, "-t", strconv.Itoa(j.PID), "-m", "--", "systemd-cat", "-t", identifier)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-cat: %v: %s", err, out)
	}
	return cmd.Process.Pid
}

// waitInJournal waits until journalctl can see an entry with this message.
// WaitInJournal waits until msg is in the journal.
func (j *Journald) WaitInJournal(t testing.TB, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("journalctl", "--directory="+j.Dir, "--output=cat", "--no-pager").Output()
		if strings.Contains(string(out), msg) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q never reached the journal", msg)
}

// Command returns a command that runs inside journald's mount namespace,
// where the system journal is the test journal (for a whole agent).
func (j *Journald) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(j.nsenter, append([]string{"-t", strconv.Itoa(j.PID), "-m", "--", name}, args...)...)
}
