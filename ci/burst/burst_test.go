//go:build linux

// Package burst checks the promise of issue 12 against the real binary: a
// burst of brute-forcing addresses is blocked, every one, in the kernel,
// with nothing failed or left queued — also across a kill -9 and a
// restart. The agent runs in enforce mode in its own network, PID and
// mount namespaces (its /var/log is a bind mount of a temporary directory,
// its host files a private copy), so it can touch nothing of this machine.
package burst

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/internal/netnstest"
	"github.com/picket-agent/picket/state"
)

// rig is one agent's private world.
type rig struct {
	bin, ns              string
	logDir, stateDir     string
	root, authLog, trace string
}

func newRig(t *testing.T) *rig {
	integration.Root(t)
	for _, b := range []string{"ip", "nft", "unshare", "mount", "sh"} {
		integration.Binary(t, b)
	}
	ns := netnstest.New(t, "burst", "s")
	dir := t.TempDir()
	r := &rig{bin: integration.BuildPicket(t), ns: ns.Name, logDir: filepath.Join(dir, "log"), stateDir: filepath.Join(dir, "state"),
		root: filepath.Join(dir, "root"), trace: filepath.Join(dir, "agent.log")}
	r.authLog = filepath.Join(r.logDir, "auth.log")
	for _, d := range []string{r.logDir, filepath.Join(r.root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(r.root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(r.root, "etc/shadow"), []byte("root:*:19000:0:99999:7:::\n"), 0o640)
	if err := os.WriteFile(r.authLog, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(r.trace); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("agent log (last 40 lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	return r
}

// proc is a running agent: the unshare process on the host and the agent
// (PID 1 of its PID namespace) by its host PID.
type proc struct {
	outer *exec.Cmd
	pid   int
	done  chan error
}

func (r *rig) start(t *testing.T) *proc {
	t.Helper()
	trace, err := os.OpenFile(r.trace, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("mount --bind %s /var/log && exec %s run --state-dir %s --config %s --mode enforce --learning-period 0s --host-root %s",
		r.logDir, r.bin, r.stateDir, filepath.Join(r.root, "absent.cue"), r.root)
	cmd := exec.Command("ip", "netns", "exec", r.ns, "unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = trace, trace
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{outer: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); trace.Close() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	// The agent is unshare's child; it is running once its status says so.
	netnstest.Eventually(t, 30*time.Second, "the agent did not start", func() bool {
		if p.pid == 0 {
			p.pid = child(cmd.Process.Pid)
		}
		var st agent.Status
		ok := r.meta(t, agent.MetaStatus, &st)
		return p.pid != 0 && ok && st.State == "running" && st.Started.After(time.Now().Add(-time.Minute)) && st.Heartbeat.After(time.Now().Add(-10*time.Second))
	})
	return p
}

// child returns the first child of pid, 0 when none (yet).
func child(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// stop signals the agent and waits for its namespace to end.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	if p.outer.ProcessState != nil {
		return
	}
	if p.pid != 0 {
		syscall.Kill(p.pid, sig)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("agent did not stop after %v; killing", sig)
		if p.pid != 0 {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		<-p.done
	}
}

func (r *rig) meta(t *testing.T, key string, v any) bool {
	t.Helper()
	st, err := state.OpenReadOnly(context.Background(), r.stateDir)
	if err != nil {
		return false
	}
	defer st.Close()
	ok, err := st.MetaJSON(context.Background(), key, v)
	return err == nil && ok
}

// attack appends n lines of failed root logins from each address.
func (r *rig) attack(t *testing.T, addrs []string, n int) {
	t.Helper()
	f, err := os.OpenFile(r.authLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	now := time.Now().Format(time.Stamp)
	for i := range n {
		for j, a := range addrs {
			fmt.Fprintf(&b, "%s burst sshd[%d]: Failed password for root from %s port %d ssh2\n", now, 1000+j, a, 40000+i)
		}
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// kernelBlocks lists the addresses in the agent's inbound block set.
func (r *rig) kernelBlocks(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", r.ns, "nft", "-j", "list", "set", "inet", "picket", "block4").Output()
	if err != nil {
		return nil
	}
	got := map[string]bool{}
	// Elements look like {"elem": {"val": "198.18.0.1", "timeout": …}};
	// a plain string search is enough for addresses of one /16.
	s := string(out)
	for {
		i := strings.Index(s, `"val": "198.18.`)
		if i < 0 {
			break
		}
		s = s[i+len(`"val": "`):]
		j := strings.IndexByte(s, '"')
		got[s[:j]] = true
		s = s[j:]
	}
	return got
}

type journal struct {
	byTarget map[string][]actions.Action
	status   map[string]int
	pending  int
}

func (r *rig) journal(t *testing.T) journal {
	t.Helper()
	ctx := context.Background()
	st, err := state.OpenReadOnly(ctx, r.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := actions.List(ctx, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	j := journal{byTarget: map[string][]actions.Action{}, status: map[string]int{}}
	for _, a := range all {
		if a.Kind == actions.BlockSource {
			j.byTarget[a.Target] = append(j.byTarget[a.Target], a)
		}
		j.status[a.Status]++
	}
	if j.pending, err = st.CountPendingPlans(ctx); err != nil {
		t.Fatal(err)
	}
	return j
}

func addresses(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		k := from + i
		out[i] = fmt.Sprintf("198.18.%d.%d", k/250, k%250+1)
	}
	return out
}

// TestBurstEveryAttackerBlocked: 500 addresses brute-forcing within a
// second are all blocked in the kernel, none failed, none left queued;
// the agent is killed with SIGKILL after the first 250 and restarted for
// the rest: still one journal entry per address, the first ones' expiry
// unchanged, the audit chain intact.
func TestBurstEveryAttackerBlocked(t *testing.T) {
	r := newRig(t)
	p := r.start(t)
	first, second := addresses(0, 250), addresses(250, 250)

	begin := time.Now()
	r.attack(t, first, 6)
	netnstest.Eventually(t, 60*time.Second, "the first 250 attackers were not all blocked in the kernel", func() bool {
		return len(r.kernelBlocks(t)) >= 250
	})
	t.Logf("250 addresses blocked in the kernel %s after their lines were written", time.Since(begin).Round(time.Millisecond))
	before := r.journal(t)
	if len(before.byTarget) != 250 || before.status[actions.StatusFailed] != 0 || before.pending != 0 {
		t.Fatalf("before the kill: %d targets, statuses %v, %d plans queued", len(before.byTarget), before.status, before.pending)
	}

	p.stop(t, syscall.SIGKILL)
	// Lines arriving while the agent is down are read at the restart.
	r.attack(t, second, 6)
	begin = time.Now()
	r.start(t)
	netnstest.Eventually(t, 60*time.Second, "not all 500 attackers blocked in the kernel after the restart", func() bool {
		return len(r.kernelBlocks(t)) >= 500
	})
	t.Logf("the other 250 blocked %s after the restart began", time.Since(begin).Round(time.Millisecond))

	after := r.journal(t)
	if after.pending != 0 || after.status[actions.StatusFailed] != 0 {
		t.Fatalf("after the restart: statuses %v, %d plans queued", after.status, after.pending)
	}
	for _, a := range append(append([]string(nil), first...), second...) {
		entries := after.byTarget[a]
		if len(entries) != 1 || entries[0].Status != actions.StatusApplied {
			t.Fatalf("%s: %d journal entries %+v, want one applied", a, len(entries), entries)
		}
	}
	for _, a := range first {
		if was, now := before.byTarget[a][0].Expires, after.byTarget[a][0].Expires; !was.Equal(now) {
			t.Fatalf("%s: expiry moved from %s to %s across the restart", a, was, now)
		}
	}
	if k := r.kernelBlocks(t); len(k) != 500 {
		t.Fatalf("%d addresses in the kernel set, want 500", len(k))
	}
	out, err := exec.Command(r.bin, "audit", "verify", "--state-dir", r.stateDir).CombinedOutput()
	if err != nil {
		t.Fatalf("picket audit verify: %v\n%s", err, out)
	}
}
