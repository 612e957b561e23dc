package actions

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/picket-agent/picket/internal/sshdtest"
)

// TestGuardProcesses reads the real /proc: PID 1, the test itself and its
// parent, sshd's listener and protected pids are never killed; an ordinary
// child is.
func TestGuardProcesses(t *testing.T) {
	srv := sshdtest.Start(t, "")
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	g := &Guard{PIDs: []int{4242424}}
	cases := []struct {
		pid  int
		want string
	}{
		{1, "PID 1"},
		{os.Getpid(), "the agent or one of its ancestors"},
		{os.Getppid(), "the agent or one of its ancestors"},
		{srv.Cmd.Process.Pid, "sshd's listener"},
		{4242424, "protected process"},
		{child.Process.Pid, ""},
	}
	if _, err := os.Stat("/proc/2/stat"); err == nil {
		cases = append(cases, struct {
			pid  int
			want string
		}{2, "kernel thread"})
	}
	for _, c := range cases {
		if got := g.Refuse(KillTree, strconv.Itoa(c.pid)); !strings.Contains(got, c.want) || (c.want == "" && got != "") {
			t.Errorf("pid %d: %q, want %q", c.pid, got, c.want)
		}
	}
	for _, bad := range []string{"0", "-3", "x"} {
		if got := g.Refuse(KillTree, bad); got != "not a process id" {
			t.Errorf("%s: %q", bad, got)
		}
	}
}
