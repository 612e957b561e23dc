package remote

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/internal/gittest"
)

// commitOn writes a commit into the Remote's local bare repository with the
// git CLI: parent's tree plus file=content (parent zero: a root commit).
func commitOn(t *testing.T, r *Remote, parent plumbing.Hash, file, content string) plumbing.Hash {
	t.Helper()
	home := t.TempDir()
	env := append(gittest.Env(t, home), "GIT_DIR="+r.cfg.Dir, "GIT_INDEX_FILE="+filepath.Join(home, "index"))
	run := func(stdin string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	if parent.IsZero() {
		run("", "read-tree", "--empty")
	} else {
		run("", "read-tree", parent.String())
	}
	blob := run(content, "hash-object", "-w", "--stdin")
	run("", "update-index", "--add", "--cacheinfo", "100644,"+blob+","+file)
	tree := run("", "write-tree")
	args := []string{"commit-tree", tree, "-m", "agent: " + file}
	if !parent.IsZero() {
		args = append(args, "-p", parent.String())
	}
	return plumbing.NewHash(run("", args...))
}

func plumbingHash(s string) plumbing.Hash { return plumbing.NewHash(s) }
