package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondAgentRefused: a second `picket run` on the same state
// directory exits 1 at once naming the first one's pid, the read-only
// commands keep working beside the running agent, and once it has stopped
// (or was SIGKILLed) a new one starts.
func TestSecondAgentRefused(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	run := func() *exec.Cmd {
		return exec.Command(bin, "run", "--state-dir", stateDir, "--config", filepath.Join(dir, "absent.cue"), "--mode", "observe")
	}
	running := func() bool {
		out, code := cli(t, bin, "status", "--state-dir", stateDir, "--json")
		return code == 0 && strings.Contains(out, `"running":true`)
	}
	first := startAgent(t, run())
	waitUntil(t, "first agent running", 20*time.Second, running)

	start := time.Now()
	out, err := run().CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("another picket (pid %d) is running on %s", first.cmd.Process.Pid, stateDir)
	if code != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("second run: exit %d, output %q; want exit 1 and %q", code, out, want)
	}
	// "At once": it did not wait for the lock (generous bound for a loaded
	// CI machine; waiting would hang until the test's deadline).
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second run took %s", d)
	}
	for _, args := range [][]string{{"status"}, {"actions"}, {"incidents", "--all"}, {"audit", "verify"}} {
		if out, code := cli(t, bin, append(args, "--state-dir", stateDir)...); code != 0 {
			t.Errorf("%v beside the running agent: exit %d: %s", args, code, out)
		}
	}
	if !running() {
		t.Fatal("the first agent stopped")
	}
	// The audit shows one start: the refused one left no trace.
	if out, _ := cli(t, bin, "audit", "--state-dir", stateDir, "--kind", "agent.start", "--json"); strings.Count(out, "\n") != 1 {
		t.Errorf("agent.start entries:\n%s", out)
	}

	first.stop(t)
	second := startAgent(t, run())
	waitUntil(t, "agent restarted after a clean stop", 20*time.Second, func() bool {
		out, _ := cli(t, bin, "status", "--state-dir", stateDir, "--json")
		return strings.Contains(out, fmt.Sprintf(`"pid":%d`, second.cmd.Process.Pid)) && strings.Contains(out, `"running":true`)
	})
	second.cmd.Process.Kill()
	<-second.exited
	third := startAgent(t, run())
	waitUntil(t, "agent restarted after SIGKILL", 20*time.Second, func() bool {
		out, _ := cli(t, bin, "status", "--state-dir", stateDir, "--json")
		return strings.Contains(out, fmt.Sprintf(`"pid":%d`, third.cmd.Process.Pid)) && strings.Contains(out, `"running":true`)
	})
	third.stop(t)
}
