package trust

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/internal/integration"
)

// gitRepo is a real repository driven by the git CLI, isolated from the
// user's configuration.
type gitRepo struct {
	t    testing.TB
	git  string
	dir  string
	home string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, git: integration.Binary(t, "git"), dir: t.TempDir(), home: t.TempDir()}
	r.run(nil, "init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) environ(extra []string) []string {
	env := []string{
		"HOME=" + r.home,
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"LANG=C",
		"PATH=" + os.Getenv("PATH"),
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		// ssh-keygen reads zone-less allowed_signers times in local time,
		// and so do we: both sides must agree on what local is.
		env = append(env, "TZ="+tz)
	}
	return append(env, extra...)
}

// run runs git with env added and returns trimmed stdout.
func (r *gitRepo) run(env []string, args ...string) string {
	r.t.Helper()
	out, err := r.runErr(env, nil, args...)
	if err != nil {
		r.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (r *gitRepo) runErr(env []string, stdin []byte, args ...string) (string, error) {
	base := []string{"-c", "user.name=Test User", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"}
	cmd := exec.Command(r.git, append(base, args...)...)
	cmd.Dir = r.dir
	cmd.Env = r.environ(env)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", errors.New(err.Error() + ": " + errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// key is a signing identity: an SSH key file or an OpenPGP key in its own
// GNUPGHOME. The zero key means "do not sign".
type key struct {
	ssh        string // private key file
	sshPub     string // "ssh-ed25519 AAAA..." (no comment)
	pgpFpr     string
	gnupgHome  string
	pgpPub     []byte // armored public key
	gpgProgram string
	revoke     func() []byte // revokes the key, returns the new export
}

func newSSHKey(t testing.TB, name string) key {
	t.Helper()
	kg := integration.Binary(t, "ssh-keygen")
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return key{ssh: path, sshPub: f[0] + " " + f[1]}
}

func newPGPKey(t testing.TB, uid string) key {
	t.Helper()
	return newPGPKeyOpts(t, uid, "never", nil)
}

// newPGPKeyOpts generates a key expiring as gpg's quick-gen-key expire
// argument says, with extra global gpg options (e.g. --faked-system-time)
// used for key generation; k.gpgArgs keeps them for signing.
func newPGPKeyOpts(t testing.TB, uid, expire string, gpgArgs []string) key {
	t.Helper()
	gpg := integration.Binary(t, "gpg")
	// gpg-agent's socket path must stay short: t.TempDir() can exceed the
	// 108-byte sun_path limit, so use a short directory under /tmp.
	home, err := os.MkdirTemp("", "pkt-gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gc, err := exec.LookPath("gpgconf"); err == nil {
			c := exec.Command(gc, "--kill", "gpg-agent")
			c.Env = append(os.Environ(), "GNUPGHOME="+home)
			_ = c.Run()
		}
		os.RemoveAll(home)
	})
	run := func(args ...string) []byte {
		c := exec.Command(gpg, append(append([]string{"--batch", "--quiet"}, gpgArgs...), args...)...)
		c.Env = append(os.Environ(), "GNUPGHOME="+home)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("gpg %v: %v: %s", args, err, errb.String())
		}
		return out.Bytes()
	}
	run("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
	var fpr string
	for _, l := range strings.Split(string(run("--with-colons", "--list-keys")), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fpr = strings.Split(l, ":")[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("gpg: no fingerprint")
	}
	k := key{pgpFpr: fpr, gnupgHome: home, pgpPub: run("--armor", "--export", fpr), gpgProgram: "gpg"}
	if len(gpgArgs) > 0 {
		// git runs gpg.program without extra arguments: wrap it.
		w := filepath.Join(home, "gpg-wrapper")
		script := "#!/bin/sh\nexec " + gpg + " " + strings.Join(gpgArgs, " ") + ` "$@"` + "\n"
		if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		k.gpgProgram = w
	}
	k.revoke = func() []byte {
		// gpg stores a ready revocation certificate, armor line escaped
		// with ':' so it is not imported by accident.
		rev, err := os.ReadFile(filepath.Join(home, "openpgp-revocs.d", fpr+".rev"))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(home, "rev.asc")
		if err := os.WriteFile(f, []byte(strings.Replace(string(rev), ":-----BEGIN", "-----BEGIN", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		run("--import", f)
		return run("--armor", "--export", fpr)
	}
	return k
}

// commit makes a commit writing files (path → content; "" deletes) signed
// by k (unsigned for the zero key), with extra environment such as
// GIT_COMMITTER_DATE.
func (r *gitRepo) commit(msg string, k key, files map[string]string, env ...string) plumbing.Hash {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.dir, p)
		if c == "" {
			r.run(nil, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.run(nil, "add", p)
	}
	args := []string{"commit", "-q", "--allow-empty", "-m", msg}
	switch {
	case k.ssh != "":
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + k.ssh}, append(args, "-S")...)
	case k.pgpFpr != "":
		args = append([]string{"-c", "gpg.program=" + k.gpgProgram, "-c", "user.signingkey=" + k.pgpFpr}, append(args, "-S")...)
		env = append(env, "GNUPGHOME="+k.gnupgHome)
	}
	r.run(env, args...)
	return r.head()
}

func (r *gitRepo) head() plumbing.Hash {
	r.t.Helper()
	return plumbing.NewHash(r.run(nil, "rev-parse", "HEAD"))
}

// signRaw rewrites HEAD (an unsigned commit) into a commit whose gpgsig
// header is an SSH signature made by ssh-keygen -Y sign with namespace ns,
// and moves the branch there. With ns "git" this is exactly what git does.
func (r *gitRepo) signRaw(k key, ns string) plumbing.Hash {
	r.t.Helper()
	payload := r.run(nil, "cat-file", "commit", "HEAD") + "\n"
	if strings.Contains(payload, "\ngpgsig ") {
		r.t.Fatal("signRaw needs an unsigned HEAD")
	}
	f := filepath.Join(r.t.TempDir(), "payload")
	if err := os.WriteFile(f, []byte(payload), 0o644); err != nil {
		r.t.Fatal(err)
	}
	kg := integration.Binary(r.t, "ssh-keygen")
	if out, err := exec.Command(kg, "-Y", "sign", "-n", ns, "-f", k.ssh, f).CombinedOutput(); err != nil {
		r.t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
	}
	sig, err := os.ReadFile(f + ".sig")
	if err != nil {
		r.t.Fatal(err)
	}
	hdr, body, _ := strings.Cut(payload, "\n\n")
	gpgsig := "gpgsig " + strings.ReplaceAll(strings.TrimSpace(string(sig)), "\n", "\n ")
	obj := hdr + "\n" + gpgsig + "\n\n" + body
	h, err := r.runErr(nil, []byte(obj), "hash-object", "-t", "commit", "-w", "--stdin")
	if err != nil {
		r.t.Fatal(err)
	}
	r.run(nil, "update-ref", "refs/heads/main", h)
	return plumbing.NewHash(h)
}

func (r *gitRepo) open() *git.Repository {
	r.t.Helper()
	repo, err := git.PlainOpen(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	return repo
}

// trustDir writes a local trust root: an allowed_signers file (if lines is
// non-empty) and the armored OpenPGP keys, then loads it.
func trustDir(t testing.TB, lines []string, pgp ...key) *TrustSet {
	t.Helper()
	dir := t.TempDir()
	if len(lines) > 0 {
		if err := os.WriteFile(filepath.Join(dir, AllowedSignersFile), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range pgp {
		if err := os.WriteFile(filepath.Join(dir, "key"+string(rune('a'+i))+".asc"), k.pgpPub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// wantRejection asserts err is a *Rejection of kind on commit bad whose
// message names the commit by its short hash.
func wantRejection(t testing.TB, err error, kind RejectKind, bad plumbing.Hash) *Rejection {
	t.Helper()
	var rej *Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("want a %v rejection, got %v", kind, err)
	}
	if rej.Kind != kind {
		t.Fatalf("kind = %v, want %v (%v)", rej.Kind, kind, rej)
	}
	if rej.Commit != bad.String() {
		t.Fatalf("rejection names commit %s, want %s (%v)", short(rej.Commit), short(bad.String()), rej)
	}
	if !strings.Contains(rej.Error(), "commit "+bad.String()[:7]+": ") {
		t.Fatalf("message does not name the commit: %q", rej.Error())
	}
	t.Logf("%v: %v", kind, rej)
	return rej
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeTempDir(t testing.TB, name, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
