package hostkey

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hiddeco/sshsig"
	"github.com/picket-agent/picket/internal/integration"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	path := filepath.Join(dir, "host_ed25519")

	k1, created, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("first call: created = false")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", got)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("key file is not OpenSSH PEM:\n%s", data)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}

	k2, created, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second call: created = true")
	}
	if k1.AuthorizedKey() != k2.AuthorizedKey() || k1.Fingerprint() != k2.Fingerprint() {
		t.Error("reloaded key differs")
	}
	if !strings.HasPrefix(k1.AuthorizedKey(), "ssh-ed25519 AAAA") {
		t.Errorf("AuthorizedKey = %q", k1.AuthorizedKey())
	}
	if !strings.HasPrefix(k1.Fingerprint(), "SHA256:") {
		t.Errorf("Fingerprint = %q", k1.Fingerprint())
	}
	want := `picket@web1 namespaces="git" ` + k1.AuthorizedKey()
	if got := k1.AllowedSignersLine("picket@web1"); got != want {
		t.Errorf("AllowedSignersLine = %q, want %q", got, want)
	}
}

func TestLoadOrCreateRefusesLooseMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host_ed25519")
	if _, _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreate(path)
	if err == nil || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("loose mode: err = %v, want a refusal naming the mode", err)
	}
	// The file must be left as it was: refusing never regenerates.
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Error("mode changed")
	}
}

func TestLoadOrCreateRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host_ed25519")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Fatal("garbage key file accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != "not a key" {
		t.Error("garbage key file was overwritten")
	}
}

// The signature must be what OpenSSH itself accepts for git.
func TestGitSignerVerifiesWithSSHKeygen(t *testing.T) {
	sshKeygen := integration.Binary(t, "ssh-keygen")
	dir := t.TempDir()
	k, _, err := LoadOrCreate(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 1 +0000\n\nhello\n")
	sig, err := k.GitSigner().Sign(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----\n")) {
		t.Fatalf("signature not armored:\n%s", sig)
	}
	sigPath := filepath.Join(dir, "msg.sig")
	allowed := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(sigPath, sig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allowed, []byte(k.AllowedSignersLine("picket@web1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	verify := func(namespace string, m []byte) (string, error) {
		cmd := exec.Command(sshKeygen, "-Y", "verify", "-n", namespace, "-I", "picket@web1", "-f", allowed, "-s", sigPath)
		cmd.Stdin = bytes.NewReader(m)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify("git", msg); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	if out, err := verify("git", append(msg, 'x')); err == nil {
		t.Fatalf("altered message verified:\n%s", out)
	}
	if out, err := verify("file", msg); err == nil {
		t.Fatalf("signature verified in namespace file:\n%s", out)
	}
	// sha512, as git with gpg.format=ssh produces.
	parsed, err := sshsig.Unarmor(sig)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.HashAlgorithm != sshsig.HashSHA512 || parsed.Namespace != "git" {
		t.Errorf("hash %s namespace %s, want sha512 git", parsed.HashAlgorithm, parsed.Namespace)
	}
}
