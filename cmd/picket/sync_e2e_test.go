package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/gittest"
	"github.com/picket-agent/picket/internal/integration"
)

// TestRunSyncsSignedConfig runs the agent binary against a config
// repository (a local bare repository): it starts on the embedded default,
// applies the signed main within a cycle, applies a later signed change
// without restart, pushes its host branch, and its checkpoints verify with
// its public key.
func TestRunSyncsSignedConfig(t *testing.T) {
	bin := binary(t)
	kg := integration.Binary(t, "ssh-keygen")
	dir := t.TempDir()
	key := filepath.Join(dir, "admin")
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	trustDir := filepath.Join(dir, "trust")
	os.MkdirAll(trustDir, 0o700)
	os.WriteFile(filepath.Join(trustDir, "allowed_signers"), []byte("admin@example.com "+string(pub)), 0o600)
	sign := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key, "-S"}

	work := gittest.NewRepo(t)
	picketCue, _ := os.ReadFile("../../examples/config-repo/picket.cue")
	work.Commit(t, map[string]string{"picket.cue": string(picketCue)}, "policy", sign...)
	remote := gittest.NewBareRepo(t, filepath.Join(dir, "config.git"))
	work.Git(t, "push", "-q", remote.Dir, "main")

	stateDir := filepath.Join(dir, "state")
	boot := filepath.Join(dir, "picket.cue")
	os.WriteFile(boot, []byte(fmt.Sprintf(`hostname: "web1"
repository: {
	url: %q
	interval: "1s"
	host_key: %q
}
trust_dir: %q
state_dir: %q
credentials: %q
`, remote.Dir, filepath.Join(dir, "host_key"), trustDir, stateDir, filepath.Join(dir, "creds"))), 0o600)

	agentp := startAgent(t, exec.Command(bin, "run", "--config", boot))
	statusHas := func(sub string) func() bool {
		return func() bool {
			out, code := cli(t, bin, "status", "--config", boot, "--json")
			return code == 0 && strings.Contains(out, sub)
		}
	}
	first := work.Head(t, "main")
	waitUntil(t, "first config applied", 30*time.Second, statusHas(`"revision":"`+first+`"`))

	// A signed threshold change is applied without restart.
	changed := strings.Replace(string(picketCue), "contain: 50", "contain: 45", 1)
	second := work.Commit(t, map[string]string{"picket.cue": changed}, "contain 45", sign...)
	work.Git(t, "push", "-q", remote.Dir, "main")
	waitUntil(t, "second config applied", 30*time.Second, statusHas(`"revision":"`+second+`"`))
	out, _ := cli(t, bin, "status", "--config", boot, "--json")
	if !strings.Contains(out, `"signer":"admin@example.com`) {
		t.Errorf("status lacks the signer: %s", out)
	}
	// While the agent runs it owns the clone.
	if out, code := cli(t, bin, "sync", "--once", "--config", boot); code == 0 || !strings.Contains(out, "in use") {
		t.Errorf("sync --once beside the agent: %d %s", code, out)
	}
	waitUntil(t, "host branch pushed", 30*time.Second, func() bool {
		_, err := remote.GitErr("rev-parse", "--verify", "hosts/web1")
		return err == nil
	})
	agentp.stop(t)
	text, _ := cli(t, bin, "status", "--config", boot)
	if !strings.Contains(text, "applied:   "+second) || !strings.Contains(text, "remote:") {
		t.Errorf("status text:\n%s", text)
	}
	// Alone, sync --once pushes the rest (the agent.stop entry) and exits 0.
	if out, code := cli(t, bin, "sync", "--once", "--config", boot); code != 0 || !strings.Contains(out, "0 queued") {
		t.Errorf("sync --once: %d %s", code, out)
	}
	pubOut, code := cli(t, bin, "hostkey", "--public", "--config", boot)
	if code != 0 || !strings.HasPrefix(pubOut, "ssh-ed25519 ") {
		t.Fatalf("hostkey: %d %s", code, pubOut)
	}
	pubFile := filepath.Join(dir, "host.pub")
	os.WriteFile(pubFile, []byte(pubOut), 0o644)
	if out, code := cli(t, bin, "audit", "verify", "--config", boot, "--pubkey", pubFile); code != 0 || !strings.Contains(out, "signed checkpoints verified") {
		t.Errorf("audit verify --pubkey: %d %s", code, out)
	}
	line, _ := cli(t, bin, "hostkey", "--config", boot)
	signers := filepath.Join(dir, "host_signers")
	os.WriteFile(signers, []byte(line), 0o644)
	if g := remote.Git(t, "-c", "gpg.ssh.allowedSignersFile="+signers, "log", "--format=%G?", "hosts/web1"); strings.Trim(g, "G\n") != "" {
		t.Errorf("host branch signatures: %q", g)
	}
	// A rejected remote config makes sync --once exit 3.
	work.Commit(t, map[string]string{"picket.cue": changed + "\n// unsigned\n"}, "unsigned")
	work.Git(t, "push", "-q", remote.Dir, "main")
	if out, code := cli(t, bin, "sync", "--once", "--config", boot); code != exitCheck || !strings.Contains(out, "rejected") {
		t.Errorf("sync --once with an unsigned head: %d %s", code, out)
	}
}
