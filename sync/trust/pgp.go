package trust

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
)

// maxSignatureSize bounds the armored signature we decode; real OpenPGP
// signatures are < 2 KiB even with RSA-4096 and many subpackets.
const maxSignatureSize = 64 << 10

// verifyPGP checks an armored OpenPGP detached signature over payload.
//
// Key expiry, signature expiry and revocation are evaluated by go-crypto at
// the current time (its default), which is what gpg and hence
// `git verify-commit` do: a commit signed by a key that has since expired or
// been revoked no longer verifies. Because that answer changes with time,
// OpenPGP results are never cached (see Verify).
func (t *TrustSet) verifyPGP(h plumbing.Hash, payload []byte, armored string) (Signer, *Rejection) {
	if len(armored) > maxSignatureSize {
		return Signer{}, reject(h, BadSignature, "OpenPGP signature is larger than %d bytes", maxSignatureSize)
	}
	blk, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return Signer{}, reject(h, BadSignature, "malformed OpenPGP signature armor: %v", err)
	}
	if blk.Type != "PGP SIGNATURE" {
		return Signer{}, reject(h, BadSignature, "armor block is %q, not a PGP SIGNATURE", blk.Type)
	}
	body, err := io.ReadAll(io.LimitReader(blk.Body, maxSignatureSize))
	if err != nil {
		return Signer{}, reject(h, BadSignature, "malformed OpenPGP signature: %v", err)
	}

	// Exactly one signature packet: git (and gpg's status parsing in git)
	// treats several as ambiguous provenance, and so do we.
	pr := packet.NewReader(bytes.NewReader(body))
	var sig *packet.Signature
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Signer{}, reject(h, BadSignature, "malformed OpenPGP signature: %v", err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return Signer{}, reject(h, BadSignature, "OpenPGP signature block contains a %T packet", p)
		}
		if sig != nil {
			return Signer{}, reject(h, Unsupported, "commit carries several OpenPGP signatures; exactly one is required")
		}
		sig = s
	}
	if sig == nil {
		return Signer{}, reject(h, BadSignature, "OpenPGP signature block is empty")
	}
	issuer := issuerString(sig)
	if sig.IssuerKeyId == nil {
		return Signer{}, reject(h, BadSignature, "OpenPGP signature names no issuer key")
	}
	if len(t.pgp.KeysByIdUsage(*sig.IssuerKeyId, packet.KeyFlagSign)) == 0 {
		return Signer{}, reject(h, Untrusted, "signed by OpenPGP key %s which is not among the trusted OpenPGP keys", issuer)
	}

	ent, err := openpgp.CheckDetachedSignature(t.pgp, bytes.NewReader(payload), bytes.NewReader(body), nil)
	if err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrKeyRevoked):
			return Signer{}, reject(h, Untrusted, "signed by OpenPGP key %s which is revoked", issuer)
		case errors.Is(err, pgperrors.ErrKeyExpired):
			return Signer{}, reject(h, OutsideValidity, "signed by OpenPGP key %s which has expired", issuer)
		case errors.Is(err, pgperrors.ErrSignatureExpired):
			return Signer{}, reject(h, OutsideValidity, "OpenPGP signature by %s (or its key's self-signature) has expired", issuer)
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			return Signer{}, reject(h, Untrusted, "signed by OpenPGP key %s which is not among the trusted OpenPGP keys", issuer)
		default:
			return Signer{}, reject(h, BadSignature, "OpenPGP signature by %s does not match the commit: %v", issuer, err)
		}
	}
	s := Signer{Format: "openpgp", Fingerprint: pgpFingerprint(ent)}
	if id := ent.PrimaryIdentity(); id != nil {
		s.Principal = id.Name
	}
	return s, nil
}

func issuerString(sig *packet.Signature) string {
	if len(sig.IssuerFingerprint) > 0 {
		return fmt.Sprintf("%X", sig.IssuerFingerprint)
	}
	if sig.IssuerKeyId != nil {
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(unknown)"
}

func pgpFingerprint(e *openpgp.Entity) string {
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
}

// pgpCanonical digests the whole serialized public key (user IDs, subkeys,
// all signatures) so a re-exported key with a revocation or a new expiry
// changes the trust set's hash.
func pgpCanonical(e *openpgp.Entity) string {
	h := sha256.New()
	if err := e.Serialize(h); err != nil {
		// Serialize only fails on writer errors or unserializable packets;
		// fall back to the fingerprint so the set still hashes stably.
		return "pgp " + pgpFingerprint(e) + " unserializable"
	}
	return fmt.Sprintf("pgp %s %x", pgpFingerprint(e), h.Sum(nil))
}
