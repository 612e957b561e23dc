package trust

import (
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestVerifyAcceptsSignedChain(t *testing.T) {
	for _, format := range []string{"ssh", "openpgp"} {
		t.Run(format, func(t *testing.T) {
			var k key
			var local *TrustSet
			if format == "ssh" {
				k = newSSHKey(t, "alice")
				local = trustDir(t, []string{"alice@example.com " + k.sshPub})
			} else {
				k = newPGPKey(t, "Alice <alice@example.com>")
				local = trustDir(t, nil, k)
			}
			r := newGitRepo(t)
			c1 := r.commit("one", k, map[string]string{"policy.cue": "a: 1\n"})
			r.commit("two", k, map[string]string{"policy.cue": "a: 2\n"})
			c3 := r.commit("three", k, map[string]string{"policy.cue": "a: 3\n"})
			repo := r.open()

			res, err := Verify(repo, Request{From: c1, To: c3, Local: local})
			if err != nil {
				t.Fatal(err)
			}
			if res.Head != c3 || res.Verified != 2 || res.Signer.Format != format {
				t.Fatalf("result = %+v", res)
			}
			if format == "ssh" && (res.Signer.Principal != "alice@example.com" || !strings.HasPrefix(res.Signer.Fingerprint, "SHA256:")) {
				t.Fatalf("signer = %+v", res.Signer)
			}
			if format == "openpgp" && (res.Signer.Principal != "Alice <alice@example.com>" || res.Signer.Fingerprint != k.pgpFpr) {
				t.Fatalf("signer = %+v, want fingerprint %s", res.Signer, k.pgpFpr)
			}
			if res.Trust.Hash() != local.Hash() {
				t.Fatal("no repository trust file, yet the effective set differs from the local one")
			}

			// First sync: only the head is checked, in every mode but All.
			for _, m := range []Mode{FirstParent, Head, All} {
				res, err = Verify(repo, Request{To: c3, Mode: m, Local: local})
				if err != nil {
					t.Fatalf("%v: %v", m, err)
				}
				want := 1
				if m == All {
					want = 3
				}
				if res.Verified != want {
					t.Fatalf("first sync in mode %v verified %d commits, want %d", m, res.Verified, want)
				}
			}

			// Nothing new.
			res, err = Verify(repo, Request{From: c3, To: c3, Local: local})
			if err != nil || res.Verified != 0 || res.Head != c3 {
				t.Fatalf("To == From: %+v, %v", res, err)
			}
		})
	}
}

// Each case starts from a commit signed by a trusted key (the applied
// revision) and adds what must be refused.
func TestVerifyRejects(t *testing.T) {
	alice := newSSHKey(t, "alice")
	mallory := newSSHKey(t, "mallory")
	retired := newSSHKey(t, "retired")
	future := newSSHKey(t, "future")
	filesOnly := newSSHKey(t, "files")
	local := trustDir(t, []string{
		"alice@example.com " + alice.sshPub,
		`retired@example.com valid-before="20250101Z" ` + retired.sshPub,
		`future@example.com valid-after="20990101Z" ` + future.sshPub,
		`files@example.com namespaces="file" ` + filesOnly.sshPub,
	})
	pgpStranger := newPGPKey(t, "Stranger <s@example.com>")

	cases := []struct {
		name  string
		kind  RejectKind
		mode  Mode
		build func(r *gitRepo, applied plumbing.Hash) (to, bad plumbing.Hash)
		why   string // substring of the reason
	}{
		{"unsigned", Unsigned, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("unsigned", key{}, nil)
			return c, c
		}, "not signed"},
		{"untrusted ssh key", Untrusted, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("mallory", mallory, nil)
			return c, c
		}, "not in allowed_signers"},
		{"untrusted openpgp key", Untrusted, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("stranger", pgpStranger, nil)
			return c, c
		}, "not among the trusted OpenPGP keys"},
		{"wrong namespace", WrongNamespace, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			r.commit("to be signed as a file", key{}, nil)
			c := r.signRaw(alice, "file")
			return c, c
		}, `namespace "file"`},
		{"expired key (valid-before)", OutsideValidity, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("late", retired, nil, "GIT_COMMITTER_DATE=2026-03-01T12:00:00Z")
			return c, c
		}, "valid-before"},
		{"key not yet valid (valid-after)", OutsideValidity, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("early", future, nil)
			return c, c
		}, "valid-after"},
		{"entry restricted to namespace file", WrongNamespace, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("files key", filesOnly, nil)
			return c, c
		}, `namespaces "file"`},
		{"force-push to an older signed revision", Rollback, FirstParent, func(r *gitRepo, applied plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			old := plumbing.NewHash(r.run(nil, "rev-parse", "HEAD~1"))
			r.run(nil, "reset", "-q", "--hard", old.String())
			return old, old
		}, "does not descend"},
		{"rotation signed only by the key it adds", TrustChange, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("add mallory", mallory, map[string]string{RepoAllowedSigners: "mallory@example.com " + mallory.sshPub + "\n"})
			return c, c
		}, "only added"},
		{"cert-authority in the repository", TrustChange, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			c := r.commit("ca", alice, map[string]string{RepoAllowedSigners: "*@example.com cert-authority " + mallory.sshPub + "\n"})
			return c, c
		}, "cert-authority is not supported"},
		{"signature over other content", BadSignature, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			signed := r.commit("original message", alice, nil)
			raw := r.run(nil, "cat-file", "commit", signed.String()) + "\n"
			forged := strings.Replace(raw, "original message", "forged message", 1)
			h, err := r.runErr(nil, []byte(forged), "hash-object", "-t", "commit", "-w", "--stdin")
			if err != nil {
				t.Fatal(err)
			}
			r.run(nil, "update-ref", "refs/heads/main", h)
			return plumbing.NewHash(h), plumbing.NewHash(h)
		}, "does not match the commit content"},
		{"unsigned middle commit", Unsigned, FirstParent, func(r *gitRepo, _ plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
			bad := r.commit("middle", key{}, nil)
			return r.commit("top", alice, nil), bad
		}, "not signed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newGitRepo(t)
			r.commit("root", alice, map[string]string{"policy.cue": "a: 0\n"})
			applied := r.commit("applied", alice, map[string]string{"policy.cue": "a: 1\n"})
			to, bad := tc.build(r, applied)
			_, err := Verify(r.open(), Request{From: applied, To: to, Mode: tc.mode, Local: local})
			rej := wantRejection(t, err, tc.kind, bad)
			if !strings.Contains(rej.Reason, tc.why) {
				t.Fatalf("reason %q lacks %q", rej.Reason, tc.why)
			}
		})
	}
}

// The signRaw helper must produce what git produces, or the wrong-namespace
// case would pass for the wrong reason.
func TestHandMadeGitNamespaceSignatureVerifies(t *testing.T) {
	alice := newSSHKey(t, "alice")
	local := trustDir(t, []string{"alice@example.com " + alice.sshPub})
	r := newGitRepo(t)
	r.commit("base", alice, nil)
	r.commit("hand-signed", key{}, nil)
	c := r.signRaw(alice, "git")
	if _, err := Verify(r.open(), Request{To: c, Local: local}); err != nil {
		t.Fatal(err)
	}
	if out, err := r.runErr([]string{}, nil, "-c", "gpg.ssh.allowedSignersFile="+writeTemp(t, "alice@example.com "+alice.sshPub+"\n"), "verify-commit", c.String()); err != nil {
		t.Fatalf("git verify-commit rejects the hand-made commit: %v %s", err, out)
	}
}

func TestVerifyRotation(t *testing.T) {
	alice := newSSHKey(t, "alice")
	bob := newSSHKey(t, "bob")
	local := trustDir(t, []string{"alice@example.com " + alice.sshPub})
	r := newGitRepo(t)
	applied := r.commit("applied", alice, nil)
	r.commit("add bob, signed by alice", alice, map[string]string{RepoAllowedSigners: "bob@example.com " + bob.sshPub + "\n"})
	r.commit("bob signs", bob, map[string]string{"policy.cue": "a: 1\n"})
	top := r.commit("bob again", bob, map[string]string{"policy.cue": "a: 2\n"})
	repo := r.open()
	res, err := Verify(repo, Request{From: applied, To: top, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified != 3 || res.Signer.Principal != "bob@example.com" {
		t.Fatalf("result = %+v", res)
	}
	if res.Trust.Hash() == local.Hash() || len(res.Trust.Signers()) != 2 {
		t.Fatalf("effective trust at head should be local + bob: %d signers", len(res.Trust.Signers()))
	}

	// Next round starts from the rotated state: bob is trusted through the
	// applied revision's tree.
	next := r.commit("bob later", bob, nil)
	if _, err := Verify(repo, Request{From: top, To: next, Local: local}); err != nil {
		t.Fatal(err)
	}

	// Removing bob (signed by bob, still trusted before it) binds the
	// descendants: bob can no longer sign after that.
	rm := r.commit("remove bob", bob, map[string]string{RepoAllowedSigners: ""})
	after := r.commit("bob after removal", bob, nil)
	_, err = Verify(r.open(), Request{From: next, To: after, Local: local})
	wantRejection(t, err, Untrusted, after)
	if _, err := Verify(r.open(), Request{From: next, To: rm, Local: local}); err != nil {
		t.Fatalf("the removal itself was signed by a then-trusted key: %v", err)
	}
}

func TestVerifyModes(t *testing.T) {
	alice := newSSHKey(t, "alice")
	local := trustDir(t, []string{"alice@example.com " + alice.sshPub})

	t.Run("unsigned middle commit", func(t *testing.T) {
		r := newGitRepo(t)
		applied := r.commit("applied", alice, nil)
		mid := r.commit("unsigned", key{}, nil)
		top := r.commit("signed", alice, nil)
		repo := r.open()
		if res, err := Verify(repo, Request{From: applied, To: top, Mode: Head, Local: local}); err != nil || res.Verified != 1 {
			t.Fatalf("head mode: %+v %v", res, err)
		}
		_, err := Verify(repo, Request{From: applied, To: top, Mode: FirstParent, Local: local})
		wantRejection(t, err, Unsigned, mid)
	})

	t.Run("unsigned commit on a merged side branch", func(t *testing.T) {
		r := newGitRepo(t)
		applied := r.commit("applied", alice, nil)
		r.run(nil, "checkout", "-q", "-b", "side")
		side := r.commit("side, unsigned", key{}, map[string]string{"side.txt": "x\n"})
		r.run(nil, "checkout", "-q", "main")
		r.commit("main work", alice, map[string]string{"main.txt": "y\n"})
		r.run([]string{}, "-c", "gpg.format=ssh", "-c", "user.signingkey="+alice.ssh, "merge", "-q", "--no-ff", "-S", "-m", "merge side", "side")
		merge := r.head()
		repo := r.open()
		res, err := Verify(repo, Request{From: applied, To: merge, Mode: FirstParent, Local: local})
		if err != nil || res.Verified != 2 {
			t.Fatalf("first-parent: %+v %v", res, err)
		}
		_, err = Verify(repo, Request{From: applied, To: merge, Mode: All, Local: local})
		wantRejection(t, err, Unsigned, side)
	})

	t.Run("applied revision merged as second parent", func(t *testing.T) {
		// main was applied at m1; someone builds on an older commit, merges
		// m1 in as second parent and pushes. It descends; the first-parent
		// chain never meets m1 and must stop at its ancestry.
		r := newGitRepo(t)
		base := r.commit("base", alice, nil)
		m1 := r.commit("m1", alice, nil)
		r.run(nil, "checkout", "-q", "-b", "other", base.String())
		o1 := r.commit("o1", alice, map[string]string{"o.txt": "1\n"})
		r.run([]string{}, "-c", "gpg.format=ssh", "-c", "user.signingkey="+alice.ssh, "merge", "-q", "--no-ff", "-S", "-m", "merge m1", "main")
		top := r.head()
		res, err := Verify(r.open(), Request{From: m1, To: top, Local: local})
		if err != nil || res.Verified != 2 {
			t.Fatalf("%+v %v (o1 %s)", res, err, short(o1.String()))
		}
	})
}

func TestVerifyCache(t *testing.T) {
	alice := newSSHKey(t, "alice")
	carol := newSSHKey(t, "carol")
	local := trustDir(t, []string{"alice@example.com " + alice.sshPub})
	r := newGitRepo(t)
	applied := r.commit("applied", alice, nil)
	r.commit("a", alice, nil)
	top := r.commit("b", alice, nil)
	repo := r.open()
	cache := NewMemoryCache(100)

	req := Request{From: applied, To: top, Local: local, Cache: cache}
	res, err := Verify(repo, req)
	if err != nil || res.Cached != 0 || res.Verified != 2 {
		t.Fatalf("first: %+v %v", res, err)
	}
	res, err = Verify(repo, req)
	if err != nil || res.Cached != 2 || res.Signer.Principal != "alice@example.com" {
		t.Fatalf("re-verify should hit the cache: %+v %v", res, err)
	}

	// Any change to the local set (here: a key added) re-verifies.
	req.Local = trustDir(t, []string{"alice@example.com " + alice.sshPub, "carol@example.com " + carol.sshPub})
	res, err = Verify(repo, req)
	if err != nil || res.Cached != 0 || res.Verified != 2 {
		t.Fatalf("after a trust change: %+v %v", res, err)
	}

	// And a key removed is not served from the cache either.
	req.Local = trustDir(t, []string{"carol@example.com " + carol.sshPub})
	_, err = Verify(repo, req)
	wantRejection(t, err, Untrusted, plumbing.NewHash(r.run(nil, "rev-parse", "HEAD~1")))
}

func TestMemoryCacheBound(t *testing.T) {
	c := NewMemoryCache(2)
	c.Put("a", "t", Signer{Principal: "a"})
	c.Put("b", "t", Signer{Principal: "b"})
	c.Get("a", "t") // a is now most recent
	c.Put("c", "t", Signer{Principal: "c"})
	if _, ok := c.Get("b", "t"); ok {
		t.Fatal("least recently used entry survived")
	}
	if s, ok := c.Get("a", "t"); !ok || s.Principal != "a" {
		t.Fatal("recent entry evicted")
	}
	if _, ok := c.Get("a", "other-trust"); ok {
		t.Fatal("hit under a different trust hash")
	}
	if c.Len() != 2 {
		t.Fatalf("len %d", c.Len())
	}
}

// Expiry and revocation are go-crypto's verdicts, at the current time, as
// gpg's for git verify-commit.
func TestVerifyOpenPGPExpiryAndRevocation(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		k := newPGPKey(t, "Rita <r@example.com>")
		r := newGitRepo(t)
		c := r.commit("signed", k, nil)
		if _, err := Verify(r.open(), Request{To: c, Local: trustDir(t, nil, k)}); err != nil {
			t.Fatal(err)
		}
		revoked := k
		revoked.pgpPub = k.revoke()
		local := trustDir(t, nil, revoked)
		if local.Hash() == trustDir(t, nil, k).Hash() {
			t.Fatal("revocation did not change the trust hash")
		}
		_, err := Verify(r.open(), Request{To: c, Local: local})
		if rej := wantRejection(t, err, Untrusted, c); !strings.Contains(rej.Reason, "revoked") {
			t.Fatal(rej)
		}
	})
	t.Run("expired", func(t *testing.T) {
		// Key made and used in 2020 (frozen clock), valid for one day.
		k := newPGPKeyOpts(t, "Ed <e@example.com>", "1d", []string{"--faked-system-time", "20200101T000000!"})
		r := newGitRepo(t)
		c := r.commit("signed in 2020", k, nil, "GIT_COMMITTER_DATE=2020-01-01T00:00:00Z")
		_, err := Verify(r.open(), Request{To: c, Local: trustDir(t, nil, k)})
		if rej := wantRejection(t, err, OutsideValidity, c); !strings.Contains(rej.Reason, "expired") {
			t.Fatal(rej)
		}
	})
}

// Our reading of allowed_signers must match what git verify-commit (which
// runs ssh-keygen -Y verify with the committer time) decides, including the
// inclusive boundaries and local-time dates.
func TestAgreesWithGitVerifyCommit(t *testing.T) {
	k := newSSHKey(t, "k")
	r := newGitRepo(t)
	at := func(date string) plumbing.Hash {
		return r.commit("at "+date, k, nil, "GIT_COMMITTER_DATE="+date)
	}
	inside := at("2024-06-01T12:00:00Z")
	onBefore := at("2024-12-31T23:59:59Z")
	justAfter := at("2025-01-01T00:00:01Z")
	onAfter := at("2024-01-01T00:00:00Z")
	justBefore := at("2023-12-31T23:59:59Z")
	repo := r.open()
	for _, c := range []struct {
		opts   string
		commit plumbing.Hash
	}{
		{``, inside},
		{`namespaces="git"`, inside},
		{`namespaces="file"`, inside},
		{`namespaces="*,!git"`, inside},
		{`valid-before="20241231235959Z"`, onBefore},
		{`valid-before="20241231235959Z"`, justAfter},
		{`valid-after="20240101Z"`, onAfter},
		{`valid-after="20240101Z"`, justBefore},
		{`valid-after="20240101",valid-before="20250101"`, inside}, // local time
		{`valid-after="20240601120001"`, inside},                   // local time
	} {
		line := "k@example.com " + c.opts + " " + k.sshPub
		if c.opts == "" {
			line = "k@example.com " + k.sshPub
		}
		_, gitErr := r.runErr(nil, nil, "-c", "gpg.ssh.allowedSignersFile="+writeTemp(t, line+"\n"), "verify-commit", c.commit.String())
		local, err := LoadDir(writeTempDir(t, AllowedSignersFile, line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, ourErr := Verify(repo, Request{To: c.commit, Mode: Head, Local: local})
		if (gitErr == nil) != (ourErr == nil) {
			t.Errorf("%s on %s: git says %v, we say %v", c.opts, short(c.commit.String()), gitErr, ourErr)
		}
	}
}
