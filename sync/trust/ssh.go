package trust

import (
	"bytes"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// gitNamespace is the SSHSIG namespace git uses for commit and tag
// signatures. A signature made for any other namespace (ssh-keygen -Y sign
// -n file, for example) is a signature over the same bytes for a different
// purpose and must not count as a commit signature.
const gitNamespace = "git"

// verifySSH checks an armored SSHSIG over payload, then the allowed_signers
// entries for the key: like `git verify-commit`, which runs ssh-keygen -Y
// verify with -Overify-time set to the committer time, validity bounds are
// checked against the committer time, not the clock. That time is chosen by
// whoever made the commit, so a valid-before only limits honest use of a
// retired key; to stop a leaked key, remove its line (which changes the
// trust set hash and so bypasses the cache).
func (t *TrustSet) verifySSH(h plumbing.Hash, committed time.Time, payload []byte, armored string) (Signer, *Rejection) {
	if len(armored) > maxSignatureSize {
		return Signer{}, reject(h, BadSignature, "SSH signature is larger than %d bytes", maxSignatureSize)
	}
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return Signer{}, reject(h, BadSignature, "malformed SSH signature: %v", err)
	}
	if _, isCert := sig.PublicKey.(*ssh.Certificate); isCert {
		return Signer{}, reject(h, Unsupported, "signed with an SSH certificate, which is not supported: sign with a key listed in allowed_signers")
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	entries := t.lookupSSH(sig.PublicKey)
	if len(entries) == 0 {
		return Signer{}, reject(h, Untrusted, "signed by key %s which is not in allowed_signers", fp)
	}
	if sig.Namespace != gitNamespace {
		return Signer{}, reject(h, WrongNamespace, "SSH signature by key %s was made for namespace %q, not %q: it is not a git commit signature", fp, sig.Namespace, gitNamespace)
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, sig.PublicKey, sig.HashAlgorithm, gitNamespace); err != nil {
		return Signer{}, reject(h, BadSignature, "SSH signature by key %s does not match the commit content: %v", fp, err)
	}
	// Several entries may list the key (local and repository, or one per
	// validity period); like ssh-keygen, any entry that permits is enough.
	// Otherwise report the first entry's objection.
	var kind RejectKind
	var why string
	for _, e := range entries {
		k, r := e.permits(gitNamespace, committed)
		if k == 0 {
			return Signer{Format: "ssh", Principal: strings.Join(e.Principals, ","), Fingerprint: fp}, nil
		}
		if kind == 0 {
			kind, why = k, r
		}
	}
	return Signer{}, reject(h, kind, "signed by key %s, but %s", fp, why)
}
