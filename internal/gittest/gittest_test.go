package gittest

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoCommitAndFastImport(t *testing.T) {
	r := NewRepo(t)
	h := r.Commit(t, map[string]string{"a/b.txt": "hello\n"}, "first", "-c", "user.name=Someone Else", "--no-verify")
	if len(h) != 40 || r.Head(t, "main") != h {
		t.Fatalf("commit %q, head %q", h, r.Head(t, "main"))
	}
	if got := r.Git(t, "log", "-1", "--format=%an %s"); got != "Someone Else first" {
		t.Fatalf("log: %q", got)
	}
	if got := r.Git(t, "show", "HEAD:a/b.txt"); got != "hello" {
		t.Fatalf("content %q", got)
	}
	head := r.FastImport(t, "main", 100)
	if n := r.Git(t, "rev-list", "--count", head); n != "101" {
		t.Fatalf("rev-list count %s", n)
	}
	if r.Git(t, "status", "--porcelain") != "" {
		t.Fatal("work tree not reset after fast-import")
	}
	// The user's own configuration does not leak in.
	if got := r.Git(t, "config", "user.email"); got != "test@picket.invalid" {
		t.Fatalf("user.email %q", got)
	}
}

func TestServeHTTP(t *testing.T) {
	root := t.TempDir()
	work := NewRepo(t)
	head := work.Commit(t, map[string]string{"x": "1"}, "x")
	NewBareRepo(t, filepath.Join(root, "r.git"))
	work.Git(t, "push", "-q", filepath.Join(root, "r.git"), "main")

	s := ServeHTTP(t, root, ServerOptions{User: "u", Password: "p"})
	authURL := strings.Replace(s.URL("r.git"), "http://", "http://u:p@", 1)
	if out := work.Git(t, "ls-remote", authURL, "refs/heads/main"); !strings.HasPrefix(out, head) {
		t.Fatalf("ls-remote: %q", out)
	}
	if _, err := work.GitErr("ls-remote", s.URL("r.git")); err == nil {
		t.Fatal("no credentials accepted")
	}
	// Push over HTTP.
	h2 := work.Commit(t, map[string]string{"y": "2"}, "y")
	work.Git(t, "push", "-q", authURL, "main:refs/heads/hosts/web1")
	if out := work.Git(t, "ls-remote", authURL, "refs/heads/hosts/web1"); !strings.HasPrefix(out, h2) {
		t.Fatalf("after push: %q", out)
	}
	// Injected failures, then recovery.
	s.FailNextWith(1, http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}})
	resp, err := http.Get(s.URL("r.git") + "/info/refs?service=git-upload-pack")
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("injected failure: %v %v", resp, err)
	}
	resp.Body.Close()
	before := s.Requests()
	s.Stop()
	if _, err := http.Get(s.URL("r.git")); err == nil {
		t.Fatal("stopped server answered")
	}
	s.Start(t)
	if out := work.Git(t, "ls-remote", authURL, "refs/heads/main"); !strings.HasPrefix(out, head) {
		t.Fatalf("after restart: %q", out)
	}
	if s.Requests() <= before {
		t.Fatal("request counter did not move")
	}
}
