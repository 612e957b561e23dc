package treefs

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/schema"
)

// TestTreeFS checks the adapter with the standard fs conformance test and
// loads the example config repository from a real git commit.
func TestTreeFS(t *testing.T) {
	gitBin := integration.Binary(t, "git")
	dir := t.TempDir()
	src, _ := filepath.Abs("../../examples/config-repo")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	if out, err := exec.Command("cp", "-a", src+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	run("add", "-A")
	run("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "config")
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head := func() *FS {
		ref, _ := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
		c, _ := repo.CommitObject(ref.Hash())
		tree, _ := c.Tree()
		return New(tree, c.Committer.When)
	}
	fsys := head()
	if err := fstest.TestFS(fsys, "picket.cue", "whitelists/admin.cue", "hosts/web1.cue"); err != nil {
		t.Fatal(err)
	}
	want, err := schema.LoadDir(src, "web1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := schema.LoadFS(fsys, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Levels != want.Levels || len(got.Whitelist.AdminIPs) != len(want.Whitelist.AdminIPs) {
		t.Fatalf("policy from git tree differs from the directory's")
	}
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	run("add", "-A")
	run("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "link")
	if _, err := fs.ReadFile(head(), "link"); err == nil {
		t.Fatal("symlink followed")
	}
}
