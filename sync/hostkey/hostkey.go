// Package hostkey is the host's own identity: an ed25519 key generated on
// the agent's first start and kept in the state directory. The host-branch
// writer (sync/hostbranch) signs its commits with it as an SSH signature
// (git gpg.format=ssh), the audit checkpoint signer (audit/checkpoint) signs
// chain heads with it, and `picket hostkey` prints the lines an operator
// adds to an allowed_signers file so that `git log --show-signature` and
// `picket audit verify --pubkey` can check what the host wrote.
//
// The host key is never a config trust root: it only proves that something
// was written by this host.
package hostkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	git "github.com/go-git/go-git/v5"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Namespace is the SSHSIG namespace git uses for commit and tag signatures.
const Namespace = "git"

// keyComment is stored in the private key file so an operator who finds the
// file knows what it is.
const keyComment = "picket host key"

// Key is a loaded host key. It is immutable and safe for concurrent use.
type Key struct {
	priv   ed25519.PrivateKey
	pub    ssh.PublicKey
	signer ssh.Signer
}

// LoadOrCreate loads the ed25519 private key (OpenSSH format) at path, or
// creates it when the file does not exist; created reports which happened.
//
// A new key is written to a temporary file in the same directory, synced,
// and then hard-linked into place, so a crash never leaves a truncated key
// and two agents starting at once never overwrite each other's key (the
// loser of the race loads the winner's). Missing directories are created
// with mode 0700, the file with mode 0600.
//
// An existing key file that is readable or writable by group or others, or
// owned by another user, is refused rather than silently tightened: a key
// that others could read may already be copied, and the operator must
// decide whether to rotate it (delete the file to have a new key made) or
// to fix the mode (chmod 600) — the host's signatures are only worth what
// the secrecy of this file is worth.
func LoadOrCreate(path string) (*Key, bool, error) {
	k, err := load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err = create(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our stat and our link.
		k, err = load(path)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return k, true, nil
}

func load(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Check the opened file, not the path, so a swap between check and read
	// cannot slip a different file in.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("host key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("host key %s has mode %04o, accessible by group or others: refusing to use it (if the key may have leaked, delete the file to generate a new one and update allowed_signers; otherwise chmod 600 it)", path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("host key %s is owned by uid %d, not by this process (uid %d): refusing to use it", path, st.Uid, os.Geteuid())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("host key %s is passphrase-protected; the agent needs an unencrypted key", path)
		}
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	var priv ed25519.PrivateKey
	switch p := raw.(type) {
	case *ed25519.PrivateKey:
		priv = *p
	case ed25519.PrivateKey:
		priv = p
	default:
		return nil, fmt.Errorf("host key %s is a %T, want ed25519", path, raw)
	}
	return fromPrivate(priv)
}

func create(path string) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, keyComment)
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	data := pem.EncodeToMemory(block)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("host key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".hostkey-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after the link, only the temporary name goes
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("host key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write host key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync host key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	// link, unlike rename, fails when path exists: never replace a key.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("install host key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		// Make the new directory entry durable; a failure here only risks
		// regenerating the key after a power loss, so it is not fatal.
		_ = d.Sync()
		d.Close()
	}
	return fromPrivate(priv)
}

// FromPrivateKey wraps an existing ed25519 key; tests and tools that manage
// the key themselves use it.
func FromPrivateKey(priv ed25519.PrivateKey) (*Key, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("hostkey: invalid ed25519 private key")
	}
	return fromPrivate(priv)
}

func fromPrivate(priv ed25519.PrivateKey) (*Key, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return &Key{priv: priv, pub: signer.PublicKey(), signer: signer}, nil
}

// PublicKey returns the SSH public key.
func (k *Key) PublicKey() ssh.PublicKey { return k.pub }

// AuthorizedKey returns the public key as one "ssh-ed25519 AAAA..." line
// without a trailing newline.
func (k *Key) AuthorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.pub)))
}

// AllowedSignersLine returns the allowed_signers line that lets git (and
// ssh-keygen -Y verify) accept this host's signatures for principal,
// restricted to the git namespace so the key cannot vouch for anything
// else. git finds the principal by key, so any name works; use the
// committer email of the host's commits (e.g. "picket@web1") to keep
// `git log --show-signature` readable. A principal containing whitespace
// is quoted.
func (k *Key) AllowedSignersLine(principal string) string {
	if strings.ContainsAny(principal, " \t") {
		principal = `"` + principal + `"`
	}
	return principal + ` namespaces="` + Namespace + `" ` + k.AuthorizedKey()
}

// Fingerprint returns the key's SHA256 fingerprint, "SHA256:...", as
// ssh-keygen -l prints it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.pub) }

// Signer returns the ed25519 private key as a crypto.Signer (what sigstore's
// signature.LoadSigner accepts).
func (k *Key) Signer() crypto.Signer { return k.priv }

// GitSigner returns a go-git commit signer that produces what
// `git commit -S` with gpg.format=ssh produces: an armored SSHSIG over the
// message, namespace "git", hash sha512.
func (k *Key) GitSigner() git.Signer { return gitSigner{k.signer} }

type gitSigner struct{ s ssh.Signer }

func (g gitSigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, g.s, sshsig.HashSHA512, Namespace)
	if err != nil {
		return nil, fmt.Errorf("ssh signature: %w", err)
	}
	return sshsig.Armor(sig), nil
}
