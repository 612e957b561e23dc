package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/internal/netnstest"
)

// TestEmergencyScriptStopsLiveAgent: the standalone script, run while an
// enforcing agent holds a block, wins: the table goes and stays gone, the
// blocked address connects again, a new attacker is not blocked, the
// breaker is tripped and the journal holds nothing in force.
func TestEmergencyScriptStopsLiveAgent(t *testing.T) {
	r := newHandsRig(t)
	h := r.agentBlocking(t) // 198.18.1.2 is blocked by the live agent
	defer h.stop()
	stateDir := filepath.Join(r.dir, "state")
	script := filepath.Join(t.TempDir(), "picket-emergency-stop")
	os.WriteFile(script, emergency.Script, 0o755)
	cmd := exec.Command("ip", "netns", "exec", r.s.Name, "/bin/sh", script)
	cmd.Env = append(os.Environ(), "PICKET_STATE_DIR="+stateDir, "PICKET_ROOT="+filepath.Join(r.dir, "root"),
		"PICKET_NOLOGIN="+filepath.Join(r.dir, "nologin"), "PICKET_NFT_TABLE="+testTable, "DOCKER_SOCKET="+filepath.Join(r.dir, "no-docker.sock"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	if _, ok, _ := emergency.ReadStop(stateDir); !ok {
		t.Fatalf("no stop file after the script:\n%s", out)
	}
	// A new attacker while stopped.
	h.appendLines(failures("198.18.2.2", 12, time.Now())...)
	// The agent checks every second: over three seconds (several checks,
	// re-assertions and commits) nothing may come back.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(r.s.Exec(t, "nft", "list", "tables"), testTable) {
			t.Fatalf("the agent re-created its table after the emergency stop\n%s", out)
		}
		if !r.reach(r.c1, "198.18.1.1:7000") {
			t.Fatal("198.18.1.2 is blocked again")
		}
		if !r.reach(r.c2, "198.18.2.1:7000") {
			t.Fatal("a new attacker was blocked while stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := mustOpen(t, h.dir)
	defer st.Close()
	netnstest.Eventually(t, 5*time.Second, "actions still in force after the stop", func() bool {
		live, err := actions.List(context.Background(), st, 0, actions.InForceStatuses()...)
		return err == nil && len(live) == 0
	})
	var b actions.Breaker
	if ok, err := st.MetaJSON(context.Background(), actions.MetaBreaker, &b); err != nil || !ok || !b.Tripped {
		t.Fatalf("breaker not tripped: %+v %v %v", b, ok, err)
	}
}
