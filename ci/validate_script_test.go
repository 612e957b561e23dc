package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/picket-agent/picket/internal/integration"
)

// TestConfigRepoValidateScript runs examples/config-repo/ci/validate.sh (the
// plain CI script for config repositories) on the example and on a broken
// copy of it.
func TestConfigRepoValidateScript(t *testing.T) {
	sh := integration.Binary(t, "sh")
	root := repoRoot(t)
	bin := integration.BuildPicket(t)
	run := func(repo string) runResult {
		return runScript(t, sh, filepath.Join(repo, "ci", "validate.sh"), scriptEnv("PICKET="+bin))
	}
	wantCode(t, run(filepath.Join(root, "examples", "config-repo")), 0)

	broken := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(root, "examples", "config-repo")+"/.", broken).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(broken, "picket.cue"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nlevels: lockdown: 10\n")
	f.Close()
	r := run(broken)
	if r.code == 0 {
		t.Fatalf("broken repository passed:\n%s", r.out)
	}
	wantOutput(t, r, "picket.cue:", "levels.lockdown")
}
