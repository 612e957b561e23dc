package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/journaldtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the real picket binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end binary tests skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "picket-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "picket")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// notifySocket listens where a systemd service manager would and collects
// the sd_notify datagrams.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// cli runs the built binary and returns stdout and the exit code.
func cli(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String() + errb.String(), code
}

// agentProc is a running agent binary.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan error
}

// startAgent starts cmd (an agent) with its stderr captured; it is killed
// when the test ends, and its log is shown if the test failed.
func startAgent(t *testing.T, cmd *exec.Cmd) *agentProc {
	t.Helper()
	p := &agentProc{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and fails the test unless the agent exits cleanly.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
}

func TestRunLifecycle(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	n := listenNotify(t)
	cmd := exec.Command(bin, "run", "--state-dir", stateDir, "--config", filepath.Join(dir, "absent.cue"), "--mode", "observe")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=300000")
	agentp := startAgent(t, cmd)

	waitUntil(t, "READY=1", 20*time.Second, func() bool { return n.count("READY=1") == 1 })
	waitUntil(t, "watchdog pings", 5*time.Second, func() bool { return n.count("WATCHDOG=1") >= 2 })

	out, code := cli(t, bin, "status", "--state-dir", stateDir, "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, out)
	}
	var st struct {
		Running bool   `json:"running"`
		State   string `json:"state"`
		Config  struct {
			Source string `json:"source"`
		} `json:"config"`
		Mode     string `json:"mode"`
		Learning struct {
			Active bool `json:"active"`
		} `json:"learning"`
		Sensors []struct{ Name, State, Detail string } `json:"sensors"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v: %s", err, out)
	}
	if !st.Running || st.State != "running" || st.Config.Source != "embedded-default" || !st.Learning.Active || len(st.Sensors) == 0 || st.Mode != "observe" {
		t.Errorf("status: %+v", st)
	}
	if out, code := cli(t, bin, "status", "--state-dir", stateDir); code != 0 || !strings.Contains(out, "running (pid") {
		t.Errorf("status text: %d %s", code, out)
	}
	// The host may have incidents of its own (the process sensor reports
	// what already runs); the agent itself is never one of them.
	out, code = cli(t, bin, "incidents", "--state-dir", stateDir, "--all", "--json")
	if code != 0 {
		t.Errorf("incidents: %d %q", code, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("incidents line is not JSON: %q", line)
		}
		if strings.Contains(line, fmt.Sprintf(`{"kind":"process","value":"%d"}`, agentp.cmd.Process.Pid)) {
			t.Errorf("the agent reported itself: %s", line)
		}
	}

	// SIGHUP reloads: a second config.applied entry.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reload audited", 10*time.Second, func() bool {
		out, _ := cli(t, bin, "audit", "--state-dir", stateDir, "--kind", "config.applied", "--json")
		return strings.Count(out, "\n") == 2
	})

	agentp.stop(t)
	if n.count("STOPPING=1") != 1 {
		t.Error("no STOPPING=1 notification")
	}
	out, _ = cli(t, bin, "status", "--state-dir", stateDir, "--json")
	if !strings.Contains(out, `"state":"stopped"`) || !strings.Contains(out, `"running":false`) {
		t.Errorf("status after stop: %s", out)
	}
	if out, code := cli(t, bin, "audit", "verify", "--state-dir", stateDir); code != 0 {
		t.Errorf("audit verify: %d %s", code, out)
	}
	// Logs are JSON lines on stderr.
	sc := bufio.NewScanner(bytes.NewReader(agentp.stderr.Bytes()))
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("stderr line is not JSON: %q", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Error("agent logged nothing")
	}
}

// TestRunJournaldEndToEnd runs `picket run --state-dir DIR` with no other
// flag and nothing in /etc/picket, with a real journald as the system
// journal (inside a private mount namespace), writes sshd failures through
// systemd-cat, and reads the incident with `picket incidents --json` while
// the agent runs.
func TestRunJournaldEndToEnd(t *testing.T) {
	bin := binary(t)
	integration.Root(t)
	if _, err := os.Stat("/etc/picket"); err == nil {
		integration.Skip(t, "/etc/picket exists on this machine; the test needs a host without it")
	}
	j := journaldtest.Start(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	agentp := startAgent(t, j.Command(bin, "run", "--state-dir", stateDir))
	waitUntil(t, "agent status", 20*time.Second, func() bool {
		out, code := cli(t, bin, "status", "--state-dir", stateDir, "--json")
		return code == 0 && strings.Contains(out, `"running":true`)
	})
	out, _ := cli(t, bin, "status", "--state-dir", stateDir, "--json")
	if !strings.Contains(out, `"detail":"journald (`) {
		t.Fatalf("auth sensor is not on journald: %s", out)
	}
	found := func() bool {
		out, code := cli(t, bin, "incidents", "--state-dir", stateDir, "--json")
		return code == 0 && strings.Contains(out, `"value":"192.0.2.99"`)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !found() {
		if time.Now().After(deadline) {
			t.Fatal("no incident for 192.0.2.99 from journald")
		}
		var b strings.Builder
		for i := 0; i < 6; i++ {
			fmt.Fprintf(&b, "Failed password for root from 192.0.2.99 port %d ssh2\n", 40000+i)
		}
		j.Log(t, "sshd", b.String())
		time.Sleep(500 * time.Millisecond)
	}
	out, _ = cli(t, bin, "incidents", "--state-dir", stateDir, "--json")
	if !strings.Contains(out, "failed SSH logins from 192.0.2.99") || !strings.Contains(out, `"level":"contain"`) {
		t.Errorf("incident: %s", out)
	}
	agentp.stop(t)
}
