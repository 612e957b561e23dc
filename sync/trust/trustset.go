package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/crypto/ssh"
)

// AllowedSignersFile is the name of the SSH trust file, both in the local
// trust directory and (under RepoAllowedSigners) in the repository.
const AllowedSignersFile = "allowed_signers"

// RepoAllowedSigners is the repository path whose content extends the trust
// set for the commits after the one that contains it.
const RepoAllowedSigners = "trust/allowed_signers"

// TrustSet is an immutable set of trusted signing keys: allowed_signers
// entries and OpenPGP public keys. Build it with LoadDir and With.
type TrustSet struct {
	signers []AllowedSigner
	byKey   map[string][]int // ssh.FingerprintSHA256 → indexes into signers
	pgp     openpgp.EntityList
	canon   []string // sorted, unique: the canonical form Hash digests
	hash    string
}

// LoadDir reads the local trust root: dir/allowed_signers (optional) and
// OpenPGP public keys in dir/*.asc and dir/*.gpg (armored or binary,
// optional; *.pub.asc is covered by *.asc). Other files are ignored so a
// README can live there. An empty directory is a valid, empty trust set
// (which rejects every commit); a missing directory is an error, because a
// mistyped path should not look like a deliberate "trust nothing".
func LoadDir(dir string) (*TrustSet, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trust directory: %w", err)
	}
	var signers []AllowedSigner
	var keys openpgp.EntityList
	for _, de := range ents {
		name := de.Name()
		isSSH := name == AllowedSignersFile
		isPGP := strings.HasSuffix(name, ".asc") || strings.HasSuffix(name, ".gpg")
		if !isSSH && !isPGP {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("trust directory: %w", err)
		} else if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("trust directory: %w", err)
		}
		if isSSH {
			s, err := ParseAllowedSigners(data, path)
			if err != nil {
				return nil, err
			}
			signers = append(signers, s...)
			continue
		}
		el, err := readPGPKeys(data, path)
		if err != nil {
			return nil, err
		}
		keys = append(keys, el...)
	}
	return newTrustSet(signers, keys), nil
}

// NewTrustSet builds a set from already-parsed parts (tests, or a caller
// that keeps keys elsewhere).
func NewTrustSet(signers []AllowedSigner, keys openpgp.EntityList) *TrustSet {
	return newTrustSet(slices.Clone(signers), slices.Clone(keys))
}

// With returns the union of t and the allowed_signers content extra (the
// repository's trust/allowed_signers). source names it in parse errors.
// t is unchanged. Local entries cannot be removed this way, only added to:
// revoking a key from the local root is an operator action on the host.
func (t *TrustSet) With(extra []byte, source string) (*TrustSet, error) {
	s, err := ParseAllowedSigners(extra, source)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return t, nil
	}
	return newTrustSet(append(slices.Clone(t.signers), s...), t.pgp), nil
}

func newTrustSet(signers []AllowedSigner, keys openpgp.EntityList) *TrustSet {
	t := &TrustSet{byKey: make(map[string][]int), pgp: keys}
	seen := make(map[string]bool)
	for _, s := range signers {
		c := s.canonical()
		if seen[c] {
			continue // same permission twice: keep the first for messages
		}
		seen[c] = true
		t.canon = append(t.canon, c)
		fp := ssh.FingerprintSHA256(s.Key)
		t.byKey[fp] = append(t.byKey[fp], len(t.signers))
		t.signers = append(t.signers, s)
	}
	for _, e := range keys {
		t.canon = append(t.canon, pgpCanonical(e))
	}
	slices.Sort(t.canon)
	t.canon = slices.Compact(t.canon)
	h := sha256.New()
	h.Write([]byte("picket-trust-v1\n"))
	for _, c := range t.canon {
		h.Write([]byte(c))
		h.Write([]byte{'\n'})
	}
	t.hash = hex.EncodeToString(h.Sum(nil))
	return t
}

// Hash is the hex SHA-256 of the set's canonical form: sorted entries with
// the key, principals, namespaces and validity bounds of each SSH entry and
// the full serialized OpenPGP keys (so a new revocation or expiry changes
// it). Comments, file names and line order do not count. Cached results are
// keyed by it, so any change to what is trusted re-verifies.
func (t *TrustSet) Hash() string { return t.hash }

// Empty reports whether the set trusts no key at all.
func (t *TrustSet) Empty() bool { return len(t.signers) == 0 && len(t.pgp) == 0 }

// Signers returns a copy of the allowed_signers entries, in load order.
func (t *TrustSet) Signers() []AllowedSigner { return slices.Clone(t.signers) }

// OpenPGPFingerprints returns the primary key fingerprints (upper-case hex).
func (t *TrustSet) OpenPGPFingerprints() []string {
	out := make([]string, 0, len(t.pgp))
	for _, e := range t.pgp {
		out = append(out, pgpFingerprint(e))
	}
	return out
}

// lookupSSH returns the entries for a key, in load order (local first).
func (t *TrustSet) lookupSSH(key ssh.PublicKey) []*AllowedSigner {
	idx := t.byKey[ssh.FingerprintSHA256(key)]
	out := make([]*AllowedSigner, 0, len(idx))
	for _, i := range idx {
		out = append(out, &t.signers[i])
	}
	return out
}

// readPGPKeys reads public keys from an armored or binary key file. A
// secret key is refused: the trust directory is world-readable config and a
// private key there is an operator mistake worth stopping for.
func readPGPKeys(data []byte, path string) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	var err error
	if bytes.Contains(data[:min(len(data), 512)], []byte("-----BEGIN ")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: OpenPGP keys: %w", path, err)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("%s: OpenPGP keys: %w", path, errors.New("no key in file"))
	}
	for _, e := range el {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("%s: contains the OpenPGP private key %s: install only public keys (gpg --export --armor)", path, pgpFingerprint(e))
		}
	}
	return el, nil
}
