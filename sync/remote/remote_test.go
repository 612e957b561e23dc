package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/internal/gittest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// upstream is a working repository whose main is pushed to a bare
// repository "config.git" under root: the remote the tests fetch from.
type upstream struct {
	work *gittest.Repo
	bare *gittest.Repo
	root string
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	root := t.TempDir()
	u := &upstream{work: gittest.NewRepo(t), root: root}
	u.bare = gittest.NewBareRepo(t, filepath.Join(root, "config.git"))
	u.work.Commit(t, map[string]string{"picket.cue": "mode: \"learn\"\n"}, "initial")
	u.work.Git(t, "remote", "add", "origin", u.bare.Dir)
	u.work.Git(t, "push", "-q", "origin", "main")
	return u
}

// commit makes a commit on main in the working repository and pushes it.
func (u *upstream) commit(t *testing.T, file, content string) string {
	t.Helper()
	h := u.work.Commit(t, map[string]string{file: content}, "change "+file)
	u.work.Git(t, "push", "-q", "origin", "main")
	return h
}

func open(t *testing.T, cfg Config) *Remote {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "state", "repo")
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	r, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func wantKind(t *testing.T, err error, temporary bool, sentinel error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *remote.Error", err, err)
	}
	if e.Temporary != temporary {
		t.Fatalf("Temporary = %v, want %v: %v", e.Temporary, temporary, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error %v does not match %v", err, sentinel)
	}
	return e
}

func TestFetchLocalPathAndFileURL(t *testing.T) {
	u := newUpstream(t)
	for name, url := range map[string]string{"path": u.bare.Dir, "file-url": "file://" + u.bare.Dir} {
		t.Run(name, func(t *testing.T) {
			r := open(t, Config{URL: url})
			heads, err := r.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := heads["main"].String(), u.work.Head(t, "main"); got != want {
				t.Fatalf("main = %s, want %s", got, want)
			}
			// The objects are in the local clone.
			c, err := r.Repo().CommitObject(heads["main"])
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if _, err := c.File("picket.cue"); err != nil {
				t.Fatalf("picket.cue: %v", err)
			}
			// Incremental fetch, then nothing to do.
			h2 := u.commit(t, "picket.cue", "mode: \"enforce\"\n")
			heads, err = r.Fetch(context.Background())
			if err != nil || heads["main"].String() != h2 {
				t.Fatalf("second fetch: %v %v", heads, err)
			}
			heads, err = r.Fetch(context.Background())
			if err != nil || heads["main"].String() != h2 {
				t.Fatalf("up-to-date fetch: %v %v", heads, err)
			}
		})
	}
}

func TestOpenReopenAndURLChange(t *testing.T) {
	u := newUpstream(t)
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, Config{URL: u.bare.Dir, Dir: dir})
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second remote with other history; reopening with its URL updates origin.
	u2 := newUpstream(t)
	r2 := open(t, Config{URL: "file://" + u2.bare.Dir, Dir: dir})
	rc, err := r2.Repo().Remote(RemoteName)
	if err != nil || rc.Config().URLs[0] != "file://"+u2.bare.Dir {
		t.Fatalf("origin = %v, %v", rc, err)
	}
	heads, err := r2.Fetch(context.Background())
	if err != nil || heads["main"].String() != u2.work.Head(t, "main") {
		t.Fatalf("fetch after URL change: %v %v", heads, err)
	}
	// A directory that holds something else is refused.
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "x"), []byte("x"), 0o600)
	if _, err := Open(Config{URL: u.bare.Dir, Dir: junk, Logger: quiet()}); err == nil {
		t.Fatal("Open on a non-repository directory succeeded")
	}
}

func TestFetchExtraBranches(t *testing.T) {
	u := newUpstream(t)
	u.work.Git(t, "checkout", "-q", "-b", "hosts/web1")
	hw := u.work.Commit(t, map[string]string{"status.json": "{}"}, "web1 status")
	u.work.Git(t, "push", "-q", "origin", "hosts/web1")
	u.work.Git(t, "checkout", "-q", "main")

	r := open(t, Config{URL: u.bare.Dir})
	heads, err := r.Fetch(context.Background(), "hosts/web1", "refs/heads/hosts/web2")
	if err != nil {
		t.Fatal(err)
	}
	if heads["main"].String() != u.work.Head(t, "main") || heads["hosts/web1"].String() != hw || !heads["hosts/web2"].IsZero() {
		t.Fatalf("heads = %v", heads)
	}
	if len(heads) != 3 {
		t.Fatalf("heads = %v", heads)
	}
	// The branch disappears on the remote: zero hash, tracking ref removed.
	u.bare.Git(t, "branch", "-D", "hosts/web1")
	heads, err = r.Fetch(context.Background(), "hosts/web1")
	if err != nil || !heads["hosts/web1"].IsZero() {
		t.Fatalf("after delete: %v %v", heads, err)
	}
	if _, err := r.Repo().Reference(TrackingRef("hosts/web1"), true); !errors.Is(err, plumbing.ErrReferenceNotFound) {
		t.Fatalf("stale tracking ref: %v", err)
	}
	// A missing main branch is an error.
	rb := open(t, Config{URL: u.bare.Dir, Branch: "release"})
	_, err = rb.Fetch(context.Background(), "main")
	wantKind(t, err, false, ErrBranchNotFound)
	// So is an empty remote.
	empty := gittest.NewBareRepo(t, "")
	_, err = open(t, Config{URL: empty.Dir}).Fetch(context.Background())
	wantKind(t, err, false, ErrBranchNotFound)
	// And a remote that does not exist.
	_, err = open(t, Config{URL: filepath.Join(t.TempDir(), "nope.git")}).Fetch(context.Background())
	wantKind(t, err, false, nil)
	// Invalid branch names are refused before any I/O.
	if _, err := r.Fetch(context.Background(), "bad..name"); err == nil {
		t.Fatal("invalid branch name accepted")
	}
}

func TestFetchAfterForcePush(t *testing.T) {
	u := newUpstream(t)
	first := u.work.Head(t, "main")
	u.commit(t, "a.cue", "a: 1\n")
	r := open(t, Config{URL: u.bare.Dir})
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Rewrite main: back to the first commit plus a different one.
	u.work.Git(t, "reset", "-q", "--hard", first)
	rewritten := u.work.Commit(t, map[string]string{"b.cue": "b: 2\n"}, "rewritten")
	u.work.Git(t, "push", "-q", "--force", "origin", "main")
	heads, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatalf("fetch after force-push: %v", err)
	}
	if heads["main"].String() != rewritten {
		t.Fatalf("main = %s, want %s", heads["main"], rewritten)
	}
	// And a plain rollback to an older commit is fetched too (the caller
	// decides it is a rollback).
	u.bare.Git(t, "update-ref", "refs/heads/main", first)
	heads, err = r.Fetch(context.Background())
	if err != nil || heads["main"].String() != first {
		t.Fatalf("rollback fetch: %v %v", heads, err)
	}
}

func TestPushLocal(t *testing.T) {
	u := newUpstream(t)
	r := open(t, Config{URL: u.bare.Dir})
	heads, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c1 := commitOn(t, r, heads["main"], "audit/1.jsonl", "one\n")
	if err := r.Push(context.Background(), c1, "hosts/web1"); err != nil {
		t.Fatal(err)
	}
	if got := u.bare.Head(t, "hosts/web1"); got != c1.String() {
		t.Fatalf("remote hosts/web1 = %s, want %s", got, c1)
	}
	// Same push again: no-op.
	if err := r.Push(context.Background(), c1, "hosts/web1"); err != nil {
		t.Fatalf("repeat push: %v", err)
	}
	// Someone else pushes to the branch; our next commit is not on top.
	u.work.Git(t, "fetch", "-q", "origin", "hosts/web1")
	u.work.Git(t, "checkout", "-q", "-b", "hosts/web1", "FETCH_HEAD")
	u.work.Commit(t, map[string]string{"other": "x"}, "someone else")
	u.work.Git(t, "push", "-q", "origin", "hosts/web1")
	c2 := commitOn(t, r, c1, "audit/2.jsonl", "two\n")
	err = r.Push(context.Background(), c2, "hosts/web1")
	wantKind(t, err, false, ErrNonFastForward)

	// A server-side refusal (protected branch, hook) is permanent and is
	// not mistaken for a non-fast-forward.
	hook := filepath.Join(u.bare.Dir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho denied by policy >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c3 := commitOn(t, r, c1, "audit/3.jsonl", "three\n")
	err = r.Push(context.Background(), c3, "hosts/web2")
	wantKind(t, err, false, nil)
	if errors.Is(err, ErrNonFastForward) || !strings.Contains(err.Error(), "declined") {
		t.Fatalf("hook refusal: %v", err)
	}
}

func TestHTTPFetchAndAuth(t *testing.T) {
	u := newUpstream(t)
	srv := gittest.ServeHTTP(t, u.root, gittest.ServerOptions{User: "agent", Password: "s3cret"})
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("agent:s3cret\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("agent:wrong\n"), 0o600)
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)

	r := open(t, Config{URL: srv.URL("config.git"), Credentials: good, Retry: fastRetry})
	heads, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if heads["main"].String() != u.work.Head(t, "main") {
		t.Fatalf("heads %v", heads)
	}

	before := srv.Requests()
	_, err = open(t, Config{URL: srv.URL("config.git"), Credentials: bad, Retry: fastRetry}).Fetch(context.Background())
	wantKind(t, err, false, ErrAuth)
	if n := srv.Requests() - before; n != 1 {
		t.Fatalf("401 was retried: %d requests", n)
	}
	_, err = open(t, Config{URL: srv.URL("config.git"), Retry: fastRetry}).Fetch(context.Background())
	wantKind(t, err, false, ErrAuth)

	// A token is sent as the password of the configured user.
	_, err = open(t, Config{URL: srv.URL("config.git"), Credentials: token, Username: "agent", Retry: fastRetry}).Fetch(context.Background())
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	// With the default user "x-access-token" this server refuses it.
	_, err = open(t, Config{URL: srv.URL("config.git"), Credentials: token, Retry: fastRetry}).Fetch(context.Background())
	wantKind(t, err, false, ErrAuth)
}

// TestHTTPSFetch: https with a token, the server's certificate trusted
// through the retry policy's transport; without that trust the fetch is
// refused, not retried as an outage.
func TestHTTPSFetch(t *testing.T) {
	u := newUpstream(t)
	srv := gittest.ServeHTTP(t, u.root, gittest.ServerOptions{User: "x-access-token", Password: "tok", TLS: true})
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("tok\n"), 0o600)
	if !strings.HasPrefix(srv.URL("config.git"), "https://") {
		t.Fatalf("url %s", srv.URL("config.git"))
	}
	trusting := fastRetry
	trusting.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}
	heads, err := open(t, Config{URL: srv.URL("config.git"), Credentials: token, Retry: trusting}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if heads["main"].String() != u.work.Head(t, "main") {
		t.Fatalf("heads %v", heads)
	}
	before := srv.Requests()
	_, err = open(t, Config{URL: srv.URL("config.git"), Credentials: token, Retry: fastRetry}).Fetch(context.Background())
	if err == nil {
		t.Fatal("fetch with an untrusted certificate succeeded")
	}
	if IsTemporary(err) {
		t.Errorf("an untrusted certificate is reported as a temporary outage: %v", err)
	}
	if n := srv.Requests() - before; n != 0 {
		t.Errorf("%d requests reached the server over an untrusted connection", n)
	}
}

var fastRetry = RetryPolicy{Attempts: 4, WaitMin: 20 * time.Millisecond, WaitMax: 2 * time.Second}

func TestHTTPRetries(t *testing.T) {
	u := newUpstream(t)
	srv := gittest.ServeHTTP(t, u.root, gittest.ServerOptions{})
	r := open(t, Config{URL: srv.URL("config.git"), Retry: fastRetry})

	t.Run("two 503 then success", func(t *testing.T) {
		h := u.commit(t, "x.cue", "x: 1\n")
		before := srv.Requests()
		srv.FailNext(2, http.StatusServiceUnavailable)
		heads, err := r.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if heads["main"].String() != h {
			t.Fatalf("heads %v", heads)
		}
		// 2 failures + advertisement + upload-pack
		if n := srv.Requests() - before; n != 4 {
			t.Fatalf("requests = %d, want 4", n)
		}
	})

	t.Run("503 until attempts run out", func(t *testing.T) {
		before := srv.Requests()
		srv.FailNext(10, http.StatusServiceUnavailable)
		_, err := r.Fetch(context.Background())
		e := wantKind(t, err, true, nil)
		if !strings.Contains(e.Error(), "503") {
			t.Fatalf("error does not name the status: %v", err)
		}
		if n := srv.Requests() - before; n != fastRetry.Attempts {
			t.Fatalf("requests = %d, want %d", n, fastRetry.Attempts)
		}
		srv.FailNext(0, 0)
	})

	t.Run("429 with Retry-After", func(t *testing.T) {
		h := u.commit(t, "y.cue", "y: 1\n")
		srv.FailNextWith(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
		start := time.Now()
		heads, err := r.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Fatalf("Retry-After not honoured: took %v", d)
		}
		if heads["main"].String() != h {
			t.Fatalf("heads %v", heads)
		}
	})

	t.Run("429 asking beyond the cap fails at once", func(t *testing.T) {
		before := srv.Requests()
		srv.FailNextWith(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}})
		start := time.Now()
		_, err := r.Fetch(context.Background())
		wantKind(t, err, true, nil)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
		if n := srv.Requests() - before; n != 1 {
			t.Fatalf("requests = %d, want 1", n)
		}
	})

	t.Run("server down then back", func(t *testing.T) {
		srv.Stop()
		slow := open(t, Config{URL: srv.URL("config.git"), Retry: RetryPolicy{Attempts: 2, WaitMin: 10 * time.Millisecond}})
		_, err := slow.Fetch(context.Background())
		e := wantKind(t, err, true, nil)
		if !strings.Contains(e.Error(), "connection refused") {
			t.Fatalf("want connection refused: %v", err)
		}
		h := u.commit(t, "z.cue", "z: 1\n")
		srv.Start(t)
		heads, err := r.Fetch(context.Background())
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if heads["main"].String() != h {
			t.Fatalf("heads %v", heads)
		}
	})

	t.Run("cancel during retries returns promptly", func(t *testing.T) {
		patient := open(t, Config{URL: srv.URL("config.git"), Retry: RetryPolicy{Attempts: 10, WaitMin: 5 * time.Second, WaitMax: 30 * time.Second}})
		srv.FailNext(100, http.StatusBadGateway)
		defer srv.FailNext(0, 0)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(200 * time.Millisecond)
			cancel()
		}()
		start := time.Now()
		_, err := patient.Fetch(ctx)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("cancel took %v", d)
		}
		wantKind(t, err, false, context.Canceled)
	})

	t.Run("repository not found", func(t *testing.T) {
		_, err := open(t, Config{URL: srv.URL("nope.git"), Retry: fastRetry}).Fetch(context.Background())
		wantKind(t, err, false, ErrNotFound)
	})
}

func TestHTTPPush(t *testing.T) {
	u := newUpstream(t)
	srv := gittest.ServeHTTP(t, u.root, gittest.ServerOptions{User: "agent", Password: "pw"})
	cred := filepath.Join(t.TempDir(), "cred")
	os.WriteFile(cred, []byte("agent:pw"), 0o600)
	r := open(t, Config{URL: srv.URL("config.git"), Credentials: cred, Retry: fastRetry})
	heads, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c1 := commitOn(t, r, heads["main"], "status.json", "{\"n\":1}\n")
	srv.FailNext(1, http.StatusServiceUnavailable) // a retried push
	if err := r.Push(context.Background(), c1, "hosts/web1"); err != nil {
		t.Fatal(err)
	}
	if got := u.bare.Head(t, "hosts/web1"); got != c1.String() {
		t.Fatalf("remote hosts/web1 = %s", got)
	}
	if ref, err := r.Repo().Reference(TrackingRef("hosts/web1"), true); err != nil || ref.Hash() != c1 {
		t.Fatalf("tracking ref: %v %v", ref, err)
	}
	c2 := commitOn(t, r, c1, "status.json", "{\"n\":2}\n")
	if err := r.Push(context.Background(), c2, "hosts/web1"); err != nil {
		t.Fatal(err)
	}
	// Another writer moves the branch (host re-imaged): our commit on the
	// old tip is rejected, not forced.
	other := commitOn(t, r, heads["main"], "status.json", "{\"reimaged\":true}\n")
	err = r.Push(context.Background(), other, "hosts/web1")
	wantKind(t, err, false, ErrNonFastForward)
	if got := u.bare.Head(t, "hosts/web1"); got != c2.String() {
		t.Fatalf("remote moved to %s after a rejected push", got)
	}
	// Fetch the branch, build on top, push: fine.
	heads, err = r.Fetch(context.Background(), "hosts/web1")
	if err != nil || heads["hosts/web1"] != c2 {
		t.Fatalf("fetch: %v %v", heads, err)
	}
	c3 := commitOn(t, r, c2, "status.json", "{\"n\":3}\n")
	if err := r.Push(context.Background(), c3, "hosts/web1"); err != nil {
		t.Fatal(err)
	}
	// Push with the server down: temporary.
	srv.Stop()
	c4 := commitOn(t, r, c3, "status.json", "{\"n\":4}\n")
	wantKind(t, r.Push(context.Background(), c4, "hosts/web1"), true, nil)
	srv.Start(t)
	if err := r.Push(context.Background(), c4, "hosts/web1"); err != nil {
		t.Fatal(err)
	}
}

func TestPushOverUnknownRemoteTip(t *testing.T) {
	// The remote tip is a commit the local clone does not have at all
	// (not fetched yet): go-git must still refuse rather than overwrite.
	u := newUpstream(t)
	r := open(t, Config{URL: u.bare.Dir})
	heads, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u.commit(t, "new.cue", "n: 1\n") // main moves on; r has not fetched it
	c := commitOn(t, r, heads["main"], "mine", "x")
	wantKind(t, r.Push(context.Background(), c, "main"), false, ErrNonFastForward)
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		msg       string
		temporary bool
		sentinel  error
	}{
		{"command error on refs/heads/main: non-fast-forward", false, ErrNonFastForward},
		{"command error on refs/heads/main: fetch first", false, ErrNonFastForward},
		{"ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain", false, ErrAuth},
		{"ssh: handshake failed: knownhosts: key is unknown", false, ErrHostKey},
		{"dial tcp: lookup git.invalid: no such host", true, nil},
		{"read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer", true, nil},
		{"command error on refs/heads/hosts/web1: pre-receive hook declined", false, nil},
		{"something odd", false, nil},
	} {
		err := classify("push", errors.New(tc.msg))
		wantKind(t, err, tc.temporary, tc.sentinel)
		if tc.sentinel == nil && (errors.Is(err, ErrNonFastForward) || errors.Is(err, ErrAuth) || errors.Is(err, ErrHostKey)) {
			t.Fatalf("%q classified as %v", tc.msg, err)
		}
	}
	if classify("fetch", nil) != nil {
		t.Fatal("nil error classified")
	}
}
