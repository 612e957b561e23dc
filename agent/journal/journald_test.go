package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/journaldtest"
)

// testJournald is a real systemd-journald running in a private mount
// namespace, so that the host's journal is never touched: /run is a fresh
// tmpfs inside the namespace (journald's sockets live there), the runtime
// journal directory /run/log/journal is a bind mount of a test directory,
// and the configuration is a drop-in in that tmpfs (volatile storage, no
// kernel log, no forwarding). Capabilities for audit are dropped so journald
// cannot enable kernel auditing on the host. Its journal files are read from
// outside with journalctl --directory.
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
	j := journaldtest.Start(t)
	host, _ := os.Hostname()
	ids := []string{"sshd", "sshd-session"}

	// Already in the journal before the Reader starts: with no cursor it
	// must not be delivered.
	j.Log(t, "sshd", "before start\n")
	j.WaitInJournal(t, "before start")

	h := startReader(t, &Reader{Directory: j.Dir, Identifiers: ids})
	waitUntil(t, "journalctl following", func() bool { return journalctlChild("--follow") != 0 })

	var all []Entry // everything delivered, in order
	expect := func(h *readerHarness, msgs ...string) []Entry {
		t.Helper()
		got := h.expect(msgs...)
		all = append(all, got...)
		return got
	}

	t.Log("entries arrive in order with identifier, pid, host, time")
	pid := j.Log(t, "sshd", "Failed password for root from 192.0.2.1 port 22 ssh2\nsecond line\n")
	j.Log(t, "cron", "not for us\n")
	got := expect(h, "Failed password for root from 192.0.2.1 port 22 ssh2", "second line")
	pid2 := j.Log(t, "sshd-session", "from sshd-session\n")
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
	j.Log(t, "sshd", "bin\x01ary\xff\n")
	expect(h, "bin\x01ary\xff")

	t.Log("journalctl killed: restarted from the last cursor, nothing lost or repeated")
	jc := journalctlChild("--follow")
	if err := syscall.Kill(jc, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	j.Log(t, "sshd", "while dead 1\nwhile dead 2\n")
	expect(h, "while dead 1", "while dead 2")
	waitUntil(t, "journalctl following again", func() bool {
		p := journalctlChild("--follow")
		return p != 0 && p != jc
	})
	j.Log(t, "sshd", "after restart\n")
	expect(h, "after restart")
	if s := h.r.Stats(); s.Restarts < 1 || s.BadLines != 0 {
		t.Errorf("stats %+v", s)
	}

	t.Log("journal file rotation (SIGUSR2 to journald)")
	if err := syscall.Kill(j.PID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "rotation", func() bool {
		m, _ := filepath.Glob(filepath.Join(j.Dir, "*", "system@*.journal"))
		return len(m) > 0
	})
	j.Log(t, "sshd", "after rotation\n")
	expect(h, "after rotation")
	h.expectNothing(300 * time.Millisecond)
	if err := h.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}

	t.Log("resume from a saved cursor: exactly the entries after it")
	h2 := startReader(t, &Reader{Directory: j.Dir, Identifiers: ids, Cursor: saved})
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
	j.Log(t, "sshd", "fresh\n")
	h2.expect("fresh")
	h2.stop()

	t.Log("Available against this journal, and against an empty one")
	wrapper := func(dir string) string {
		p := filepath.Join(t.TempDir(), "journalctl")
		os.WriteFile(p, []byte("#!/bin/sh\nexec journalctl --directory='"+dir+"' \"$@\"\n"), 0o755)
		return p
	}
	if err := Available(context.Background(), wrapper(j.Dir)); err != nil {
		t.Errorf("Available: %v", err)
	}
	if err := Available(context.Background(), wrapper(t.TempDir())); err == nil {
		t.Error("Available on an empty journal directory: want error")
	}
}
