package persist

import (
	"bytes"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuthorizedKey is one key line of an authorized_keys file.
type AuthorizedKey struct {
	Line        int
	Type        string // ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, sk-..., or a certificate type
	Fingerprint string // "SHA256:..." as ssh-keygen -l prints it
	Comment     string
	// Options as written (command="...", from="...", no-pty,
	// cert-authority, ...): a forced command or a missing from= is what
	// an operator wants to see.
	Options []string
}

// String renders the key as events show it: `<type> SHA256:<fp> <comment>`.
func (k AuthorizedKey) String() string {
	return strings.TrimSpace(k.Type + " " + k.Fingerprint + " " + k.Comment)
}

// Key identifies the key with its options: the same key given a new
// forced command, or losing its from= restriction, is a new grant.
func (k AuthorizedKey) Key() string {
	return k.Fingerprint + " " + strings.Join(k.Options, ",")
}

// Command returns the forced command option, if any.
func (k AuthorizedKey) Command() string {
	for _, o := range k.Options {
		if v, ok := strings.CutPrefix(o, "command="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// ParseAuthorizedKeys parses an authorized_keys file as sshd reads it
// (sshd(8) AUTHORIZED_KEYS FILE FORMAT). Lines sshd would not accept are
// returned in bad.
func ParseAuthorizedKeys(data []byte) (keys []AuthorizedKey, bad []int) {
	n := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		pk, comment, opts, _, err := ssh.ParseAuthorizedKey(t)
		if err != nil {
			bad = append(bad, n)
			continue
		}
		keys = append(keys, AuthorizedKey{Line: n, Type: pk.Type(), Fingerprint: ssh.FingerprintSHA256(pk),
			Comment: comment, Options: opts})
	}
	return keys, bad
}
