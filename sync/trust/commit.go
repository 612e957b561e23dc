package trust

import (
	"errors"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Armor headers git writes into the gpgsig header, by signature format.
const (
	sshArmor  = "-----BEGIN SSH SIGNATURE-----"
	pgpArmor  = "-----BEGIN PGP SIGNATURE-----"
	x509Armor = "-----BEGIN SIGNED MESSAGE-----"
)

// maxCommitSize bounds the payload we hash; a commit object is headers plus
// a message, so anything this large is hostile, not a config change.
const maxCommitSize = 1 << 20

// VerifyCommit checks the signature of one commit against t alone; it knows
// nothing about ranges, rotation or caching (Verify adds those). A failure
// is a *Rejection naming the commit; other errors (unreadable object) are
// returned as they are.
//
// go-git puts any gpgsig header into Commit.PGPSignature whatever its
// format, so the armor line decides: SSH (SSHSIG, namespace "git") or
// OpenPGP. gpgsig-sha256 (SHA-256 repositories) is not read by go-git v5.
func (t *TrustSet) VerifyCommit(c *object.Commit) (Signer, error) {
	if t == nil {
		return Signer{}, errors.New("trust: VerifyCommit on a nil TrustSet")
	}
	sig := strings.TrimLeft(c.PGPSignature, " \t\r\n")
	if sig == "" {
		return Signer{}, reject(c.Hash, Unsigned, "not signed: every commit to be applied must be signed by a trusted key")
	}
	if strings.Count(sig, "-----BEGIN ") > 1 {
		return Signer{}, reject(c.Hash, Unsupported, "commit carries several signatures; exactly one is required")
	}
	payload, err := commitPayload(c)
	if err != nil {
		return Signer{}, err
	}
	var s Signer
	var rej *Rejection
	switch {
	case strings.HasPrefix(sig, sshArmor):
		s, rej = t.verifySSH(c.Hash, c.Committer.When, payload, sig)
	case strings.HasPrefix(sig, pgpArmor):
		s, rej = t.verifyPGP(c.Hash, payload, sig)
	case strings.HasPrefix(sig, x509Armor):
		rej = reject(c.Hash, Unsupported, "X.509 (gpgsm) signatures are not supported: sign with SSH or OpenPGP")
	default:
		rej = reject(c.Hash, Unsupported, "signature is in an unrecognised format (neither SSH nor OpenPGP armor)")
	}
	if rej != nil {
		return Signer{}, rej
	}
	return s, nil
}

// commitPayload is the signed content: the raw commit object with its
// gpgsig headers removed (go-git streams it from the stored bytes, so
// non-canonical encodings still verify as git would).
func commitPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	if o.Size() > maxCommitSize {
		return nil, reject(c.Hash, BadSignature, "commit object is larger than %d bytes", maxCommitSize)
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
