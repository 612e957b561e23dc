//go:build linux

package account

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions/proctree"
	"github.com/picket-agent/picket/internal/integration"
)

// runAs starts script as a throwaway uid that no account on the host
// uses (no user is created).
func runAs(t *testing.T, uid int, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// byUID lists the live (non-zombie) processes whose real uid is uid.
func byUID(t *testing.T, uid int) []int {
	t.Helper()
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A zombie is dead; its parent just has not reaped it.
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(b, ')'); err != nil || i < 0 || bytes.HasPrefix(b[i:], []byte(") Z")) {
			continue
		}
		if u, err := proctree.UIDs("/proc", pid); err == nil && u[0] == uid {
			out = append(out, pid)
		}
	}
	return out
}

func TestEndSessions(t *testing.T) {
	integration.Root(t)
	integration.Binary(t, "sh")
	const victim, bystander = 64123, 64124
	// A login shell with jobs and a nested shell, as a session has.
	runAs(t, victim, "sleep 100 & (sleep 100 & sleep 100; wait) & trap '' HUP TERM; wait")
	runAs(t, victim, "exec sleep 100")
	runAs(t, bystander, "exec sleep 100")
	deadline := time.Now().Add(5 * time.Second)
	for len(byUID(t, victim)) < 6 || len(byUID(t, bystander)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("processes did not start: %v %v", byUID(t, victim), byUID(t, bystander))
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := byUID(t, victim)
	r, err := EndSessions(context.Background(), victim, proctree.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var killed []int
	for _, k := range r.Killed {
		killed = append(killed, k.PID)
	}
	slices.Sort(killed)
	slices.Sort(before)
	if !slices.Equal(killed, before) {
		t.Errorf("killed %v, want %v", killed, before)
	}
	if left := byUID(t, victim); len(left) != 0 {
		t.Errorf("victim processes left: %v", left)
	}
	if left := byUID(t, bystander); len(left) != 1 {
		t.Errorf("bystander processes: %v", left)
	}
	if _, err := EndSessions(context.Background(), 0, proctree.Options{}); !errors.Is(err, ErrProtected) {
		t.Errorf("uid 0: %v", err)
	}
}
