package journal

import (
	"bytes"
	"context"
	"errors"
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

// testJournald is a real systemd-journald running in a private mount
// namespace, so that the host's journal is never touched: /run is a fresh
// tmpfs inside the namespace (journald's sockets live there), the runtime
// journal directory /run/log/journal is a bind mount of a test directory,
// and the configuration is a drop-in in that tmpfs (volatile storage, no
// kernel log, no forwarding). Capabilities for audit are dropped so journald
// cannot enable kernel auditing on the host. Its journal files are read from
// outside with journalctl --directory.
type testJournald struct {
	dir     string // where journald writes <machine-id>/system.journal
	pid     int    // journald (host pid namespace)
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

func startJournald(t *testing.T) *testJournald {
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
	j := &testJournald{dir: dir, nsenter: nsenter, logs: &bytes.Buffer{}}
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
		if j.pid > 0 {
			syscall.Kill(j.pid, syscall.SIGTERM)
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
		if j.pid == 0 {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", upid, upid)); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					j.pid, _ = strconv.Atoi(f[0])
				}
			}
		}
		// The journal file is opened after the sockets are listening.
		if m, _ := filepath.Glob(filepath.Join(dir, "*", "system.journal")); len(m) > 0 && j.pid > 0 {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", j.pid))
			if strings.HasSuffix(exe, "systemd-journald") {
				return j
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// log sends input to journald as identifier's stdout stream (one entry per
// line) and returns the sender's pid, which is the entries' _PID.
func (j *testJournald) log(t *testing.T, identifier, input string) int {
	t.Helper()
	// nsenter without -p/-f execs in place: its pid is systemd-cat's.
	cmd := exec.Command(j.nsenter, "-t", strconv.Itoa(j.pid), "-m", "--", "systemd-cat", "-t", identifier)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-cat: %v: %s", err, out)
	}
	return cmd.Process.Pid
}

// waitInJournal waits until journalctl can see an entry with this message.
func (j *testJournald) waitInJournal(t *testing.T, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("journalctl", "--directory="+j.dir, "--output=cat", "--no-pager").Output()
		if strings.Contains(string(out), msg) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q never reached the journal", msg)
}

// journalctlChild returns the pid of our journalctl child whose command
// line contains arg, or 0.
func journalctlChild(arg string) int {
	me := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(me) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "journalctl" && strings.Contains(string(cmdline), arg) {
			return pid
		}
	}
	return 0
}

func TestJournald(t *testing.T) {
	j := startJournald(t)
	host, _ := os.Hostname()
	ids := []string{"sshd", "sshd-session"}

	// Already in the journal before the Reader starts: with no cursor it
	// must not be delivered.
	j.log(t, "sshd", "before start\n")
	j.waitInJournal(t, "before start")

	h := startReader(t, &Reader{Directory: j.dir, Identifiers: ids})
	waitUntil(t, "journalctl following", func() bool { return journalctlChild("--follow") != 0 })

	var all []Entry // everything delivered, in order
	expect := func(h *readerHarness, msgs ...string) []Entry {
		t.Helper()
		got := h.expect(msgs...)
		all = append(all, got...)
		return got
	}

	t.Log("entries arrive in order with identifier, pid, host, time")
	pid := j.log(t, "sshd", "Failed password for root from 192.0.2.1 port 22 ssh2\nsecond line\n")
	j.log(t, "cron", "not for us\n")
	got := expect(h, "Failed password for root from 192.0.2.1 port 22 ssh2", "second line")
	pid2 := j.log(t, "sshd-session", "from sshd-session\n")
	got = append(got, expect(h, "from sshd-session")...)
	for i, e := range got {
		wantID, wantPID := "sshd", pid
		if i == 2 {
			wantID, wantPID = "sshd-session", pid2
		}
		if e.Identifier != wantID || e.PID != wantPID || e.Host != host || e.Cursor == "" ||
			time.Since(e.Time) > time.Minute || time.Since(e.Time) < -time.Minute {
			t.Errorf("entry %d: %+v (want %s pid %d host %s)", i, e, wantID, wantPID, host)
		}
	}
	saved := got[1].Cursor

	t.Log("binary MESSAGE (journalctl prints it as a byte array)")
	j.log(t, "sshd", "bin\x01ary\xff\n")
	expect(h, "bin\x01ary\xff")

	t.Log("journalctl killed: restarted from the last cursor, nothing lost or repeated")
	jc := journalctlChild("--follow")
	if err := syscall.Kill(jc, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	j.log(t, "sshd", "while dead 1\nwhile dead 2\n")
	expect(h, "while dead 1", "while dead 2")
	waitUntil(t, "journalctl following again", func() bool {
		p := journalctlChild("--follow")
		return p != 0 && p != jc
	})
	j.log(t, "sshd", "after restart\n")
	expect(h, "after restart")
	if s := h.r.Stats(); s.Restarts < 1 || s.BadLines != 0 {
		t.Errorf("stats %+v", s)
	}

	t.Log("journal file rotation (SIGUSR2 to journald)")
	if err := syscall.Kill(j.pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "rotation", func() bool {
		m, _ := filepath.Glob(filepath.Join(j.dir, "*", "system@*.journal"))
		return len(m) > 0
	})
	j.log(t, "sshd", "after rotation\n")
	expect(h, "after rotation")
	h.expectNothing(300 * time.Millisecond)
	if err := h.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}

	t.Log("resume from a saved cursor: exactly the entries after it")
	h2 := startReader(t, &Reader{Directory: j.dir, Identifiers: ids, Cursor: saved})
	var want []string
	for _, e := range all[2:] {
		want = append(want, e.Message)
	}
	got = h2.expect(want...)
	for i, e := range got {
		if e != all[2+i] {
			t.Errorf("resumed entry %d: %+v, first run had %+v", i, e, all[2+i])
		}
	}
	h2.expectNothing(300 * time.Millisecond)
	j.log(t, "sshd", "fresh\n")
	h2.expect("fresh")
	h2.stop()

	t.Log("Available against this journal, and against an empty one")
	wrapper := func(dir string) string {
		p := filepath.Join(t.TempDir(), "journalctl")
		os.WriteFile(p, []byte("#!/bin/sh\nexec journalctl --directory='"+dir+"' \"$@\"\n"), 0o755)
		return p
	}
	if err := Available(context.Background(), wrapper(j.dir)); err != nil {
		t.Errorf("Available: %v", err)
	}
	if err := Available(context.Background(), wrapper(t.TempDir())); err == nil {
		t.Error("Available on an empty journal directory: want error")
	}
}
