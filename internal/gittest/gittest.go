// Package gittest is the test harness shared by the sync packages' tests: it
// makes real git repositories with the git CLI and serves them over HTTP with
// the real `git http-backend`, so that fetches, pushes, retries and outages in
// tests go through the same code paths as in production.
//
// Everything runs with an isolated environment: HOME points into the test's
// temporary directory, GIT_CONFIG_GLOBAL is a file there (with user.name,
// user.email and init.defaultBranch=main), and the system config is ignored,
// so the developer's own git configuration never leaks into a test.
//
// A test that uses this package needs the git binary; NewRepo and ServeHTTP
// skip through package integration (a failure in CI) when it is missing.
package gittest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-agent/picket/internal/integration"
)

// Repo is a git repository created by the git CLI for a test.
type Repo struct {
	// Dir is the repository's directory: the work tree of a normal
	// repository, the repository itself when Bare.
	Dir string
	// Bare is true for a repository without a work tree.
	Bare bool
	// Home is the isolated HOME used for every git command.
	Home string

	env []string
}

// NewRepo creates a non-bare repository with branch main in a new temporary
// directory.
func NewRepo(t testing.TB) *Repo {
	t.Helper()
	return newRepo(t, filepath.Join(t.TempDir(), "work"), false)
}

// NewBareRepo creates a bare repository at path (created if missing), or in
// a new temporary directory when path is empty. Use it for remotes: a bare
// repository accepts pushes to any branch.
func NewBareRepo(t testing.TB, path string) *Repo {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "remote.git")
	}
	return newRepo(t, path, true)
}

func newRepo(t testing.TB, dir string, bare bool) *Repo {
	t.Helper()
	integration.Binary(t, "git")
	home := t.TempDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Repo{Dir: dir, Bare: bare, Home: home, env: Env(t, home)}
	args := []string{"init", "-q", "-b", "main"}
	if bare {
		args = append(args, "--bare")
	}
	r.Git(t, append(args, dir)...)
	return r
}

// Env returns an isolated environment for running git: HOME=home,
// GIT_CONFIG_GLOBAL=home/.gitconfig (written with a test identity and
// init.defaultBranch=main if missing), GIT_CONFIG_NOSYSTEM=1, a fixed
// locale and no terminal prompts. PATH is inherited.
func Env(t testing.TB, home string) []string {
	t.Helper()
	cfg := filepath.Join(home, ".gitconfig")
	if _, err := os.Stat(cfg); os.IsNotExist(err) {
		const body = "[user]\n\tname = Picket Test\n\temail = test@picket.invalid\n" +
			"[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n" +
			"[safe]\n\tdirectory = *\n[protocol \"file\"]\n\tallow = always\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_GLOBAL=" + cfg,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
		"TZ=UTC",
	}
}

// Environ returns the environment the repository's git commands run with,
// for tests that run other tools (ssh-keygen, gpg, the git binary with
// extra variables) in the same isolation.
func (r *Repo) Environ() []string { return append([]string(nil), r.env...) }

// Git runs git with args in the repository and returns its trimmed standard
// output; the test fails with git's standard error when git fails.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.GitErr(args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// GitErr is Git returning the error (with git's standard error in its
// message) instead of failing the test.
func (r *Repo) GitErr(args ...string) (string, error) {
	return r.GitInput(nil, args...)
}

// GitInput is GitErr with stdin.
func (r *Repo) GitInput(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = r.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Commit writes files (path relative to the work tree → content; parent
// directories are created), stages everything and commits with msg. It
// returns the new commit's hash. An empty files map makes an empty commit.
//
// extraGitArgs are added to the `git commit` command line, except that a
// "-c" and the argument after it are global options and go before
// "commit": Commit(t, files, "msg", "-c", "gpg.format=ssh", "-c",
// "user.signingkey=/k", "-S").
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string, extraGitArgs ...string) string {
	t.Helper()
	if r.Bare {
		t.Fatal("gittest: Commit on a bare repository")
	}
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.Git(t, "add", "-A")
	var global, local []string
	for i := 0; i < len(extraGitArgs); i++ {
		if extraGitArgs[i] == "-c" && i+1 < len(extraGitArgs) {
			global = append(global, "-c", extraGitArgs[i+1])
			i++
			continue
		}
		local = append(local, extraGitArgs[i])
	}
	args := append(global, "commit", "-q", "--allow-empty", "-m", msg)
	r.Git(t, append(args, local...)...)
	return r.Git(t, "rev-parse", "HEAD")
}

// Head returns the hash a revision (branch, ref, "HEAD") resolves to.
func (r *Repo) Head(t testing.TB, rev string) string {
	t.Helper()
	return r.Git(t, "rev-parse", "--verify", "-q", rev+"^{commit}")
}

// FastImport appends n commits to branch (created if missing) with `git
// fast-import`, each rewriting "history.txt" and one of 64 files under
// "h/" (so trees stay small, like a config repository's), and returns the
// new head. It makes thousands of commits in a
// fraction of a second: use it for long-history tests and benchmarks.
func (r *Repo) FastImport(t testing.TB, branch string, n int) string {
	t.Helper()
	ref := "refs/heads/" + branch
	parent, _ := r.GitErr("rev-parse", "--verify", "-q", ref)
	var b bytes.Buffer
	const when = 1700000000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "commit %s\n", ref)
		fmt.Fprintf(&b, "committer Picket Test <test@picket.invalid> %d +0000\n", when+i)
		msg := fmt.Sprintf("commit %d\n", i)
		fmt.Fprintf(&b, "data %d\n%s", len(msg), msg)
		if i == 0 && parent != "" {
			fmt.Fprintf(&b, "from %s\n", parent)
		}
		content := fmt.Sprintf("line %d of branch %s\n", i, branch)
		fmt.Fprintf(&b, "M 100644 inline history.txt\ndata %d\n%s", len(content), content)
		fmt.Fprintf(&b, "M 100644 inline h/%s-%d.txt\ndata %d\n%s\n", strings.ReplaceAll(branch, "/", "_"), i%64, len(content), content)
	}
	b.WriteString("done\n")
	if _, err := r.GitInput(b.Bytes(), "fast-import", "--quiet", "--done", "--force"); err != nil {
		t.Fatalf("git fast-import: %v", err)
	}
	if !r.Bare {
		if cur, _ := r.GitErr("symbolic-ref", "-q", "HEAD"); cur == ref {
			r.Git(t, "reset", "-q", "--hard", ref)
		}
	}
	return r.Git(t, "rev-parse", ref)
}
