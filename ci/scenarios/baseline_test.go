package scenarios

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// baselineLearning is the learning period of TestBaselineScenario. The
// policy only allows 0 or 24h–72h; `picket run --learning-period` is the
// run-time override the scenario runner already uses (for 0s), and it does
// not weaken what a config repository may say.
const baselineLearning = 12 * time.Second

// TestBaselineScenario learns a sandboxed workload for a short period
// (baseline_learn/workload), waits for baseline version 1, then runs an
// intrusion (baseline_learn/intrusion: the routine once more, netcat to a
// listener in another namespace, a new cron line) and checks
// baseline_learn/expect.json like any scenario. It is not a TestScenarios
// directory (no run.sh at its top) because it needs a learning agent.
func TestBaselineScenario(t *testing.T) {
	integration.Root(t)
	integration.Binary(t, "ip")
	bash := integration.Binary(t, "bash")
	root := repoRoot(t)
	dir := filepath.Join(root, "ci", "scenarios", "baseline_learn")
	exp, timeout, _ := loadExpectation(t, dir)
	for _, b := range exp.Needs {
		integration.Binary(t, b)
	}
	bin := integration.BuildPicket(t)
	tmp, err := os.MkdirTemp("", "picket-scenario-baseline-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o755)
	stateDir := filepath.Join(t.TempDir(), "state")
	hostRoot := filepath.Join(tmp, "hostroot")
	makeHostRoot(t, hostRoot)

	cmd := exec.Command(bin, "run", "--state-dir", stateDir, "--config", filepath.Join(filepath.Dir(stateDir), "absent.cue"),
		"--mode", "observe", "--learning-period", baselineLearning.String(), "--host-root", hostRoot)
	var stderr syncBuf
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("agent exit: %v", err)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("agent did not stop on SIGTERM")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", tail(stderr.String(), 6000))
		}
	})
	waitUntil(t, agentStartup, "agent running", func() bool {
		out, err := picket(bin, "status", "--state-dir", stateDir, "--json")
		return err == nil && strings.Contains(out, `"running":true`)
	})
	time.Sleep(sensorWarmup)
	for _, name := range exp.Sensors {
		if st := sensorState(bin, stateDir, name); st == "" || st == "off" {
			t.Fatalf("sensor %s is %q; the scenario needs it", name, st)
		}
	}

	prefix := "pkbl" + strings.ToLower(strings.TrimLeft(time.Now().Format("150405"), "0")) + "-"
	t.Cleanup(func() { sweepNamespaces(t, prefix) })
	if _, err := runScript(t, scenario{name: "workload", dir: filepath.Join(dir, "workload"), root: root, bin: bin, bash: bash, prefix: prefix}, tmp); err != nil {
		t.Fatalf("workload: %v", err)
	}
	waitUntil(t, baselineLearning+30*time.Second, "baseline version 1", func() bool {
		out, err := picket(bin, "baseline", "status", "--state-dir", stateDir, "--json")
		var st struct {
			Versions []struct{ N int } `json:"versions"`
		}
		return err == nil && json.Unmarshal([]byte(out), &st) == nil && len(st.Versions) == 1
	})
	out, _ := picket(bin, "baseline", "show", "persistence", "--state-dir", stateDir)
	if !strings.Contains(out, "/usr/local/bin/app-tick") {
		t.Errorf("the workload's cron line was not learned:\n%s", out)
	}

	watch, werr := watchForks()
	if werr != nil {
		t.Logf("attribution off: %v", werr)
	} else {
		defer watch.Close()
	}
	pid, runErr := runScript(t, scenario{name: "intrusion", dir: filepath.Join(dir, "intrusion"), root: root, bin: bin, bash: bash, prefix: prefix}, tmp)
	if runErr != nil {
		t.Errorf("intrusion: %v", runErr)
	}
	sweepNamespaces(t, prefix)
	var ours map[int]bool
	if watch != nil {
		watch.Close()
		if o, lost := watch.Descendants(pid); lost == nil {
			ours = o
		}
	}
	var incs []incident
	var missing []string
	deadline := time.Now().Add(timeout)
	for {
		incs = readIncidents(t, bin, stateDir)
		attribute(incs, ours)
		if missing = checkPositive(exp, incs); len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	problems := append(missing, checkNegative(exp, incs)...)
	// The routine ran again after the promotion: its sh/ls/date must not
	// be baseline deviations.
	for _, in := range incs {
		for _, s := range scenarioSignals(in) {
			if strings.HasPrefix(s.Rule, "baseline.new_process") && (strings.Contains(s.Reason, "ls(") || strings.Contains(s.Reason, "date(")) {
				problems = append(problems, "learned routine flagged: "+s.Reason)
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("baseline scenario: %s\n%s", strings.Join(problems, "\n  - "), describe(incs))
	} else {
		t.Log(describe(incs))
	}
	stop()
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func sensorState(bin, stateDir, name string) string {
	out, err := picket(bin, "status", "--state-dir", stateDir, "--json")
	if err != nil {
		return ""
	}
	var st struct {
		Sensors []struct{ Name, State string } `json:"sensors"`
	}
	json.Unmarshal([]byte(out), &st)
	for _, s := range st.Sensors {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

// syncBuf collects the agent's output from its two pipes' goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
