package trust

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// Signer identifies who signed an accepted commit; the config sync records
// it with the applied revision and in the audit entry.
type Signer struct {
	Format string // "ssh" or "openpgp"
	// Principal is the allowed_signers principals field for SSH, the primary
	// user ID ("Name <email>") for OpenPGP.
	Principal string
	// Fingerprint is "SHA256:..." (ssh-keygen -l style) for SSH and the
	// primary key's fingerprint in upper-case hex (as gpg --list-keys shows
	// it) for OpenPGP.
	Fingerprint string
}

// String is what an audit entry shows: "principal (fingerprint)".
func (s Signer) String() string {
	if s.Principal == "" {
		return s.Fingerprint
	}
	return s.Principal + " (" + s.Fingerprint + ")"
}

// RejectKind classifies a Rejection so callers can count and alert per kind.
type RejectKind int

// Rejection kinds. Values are stable for storage; String gives the name.
const (
	Unsigned        RejectKind = iota + 1 // no signature at all
	BadSignature                          // malformed, or does not match the commit content
	Untrusted                             // valid format, key not in the trust set (or revoked)
	WrongNamespace                        // SSH signature not made for git, or entry forbids "git"
	OutsideValidity                       // committer time outside valid-after/valid-before, or expired OpenPGP key
	Unsupported                           // X.509, several signatures, unknown format
	Rollback                              // new head does not descend from the applied revision
	TrustChange                           // repository trust/allowed_signers change that cannot be accepted
)

var kindNames = [...]string{
	Unsigned:        "unsigned",
	BadSignature:    "bad-signature",
	Untrusted:       "untrusted",
	WrongNamespace:  "wrong-namespace",
	OutsideValidity: "outside-validity",
	Unsupported:     "unsupported",
	Rollback:        "rollback",
	TrustChange:     "trust-change",
}

func (k RejectKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("RejectKind(%d)", int(k))
}

// Rejection is the reason a revision must not be applied. It is an expected
// outcome, not an operational failure: Verify returns other errors (object
// missing, I/O) as plain errors.
type Rejection struct {
	Commit string // full hex hash of the commit at fault
	Kind   RejectKind
	Reason string // sentence fragment, without the commit prefix
}

// Error names the commit by its short hash, e.g.
// "commit 1a2b3c4: signed by key SHA256:xyz which is not in allowed_signers".
func (r *Rejection) Error() string {
	return "commit " + short(r.Commit) + ": " + r.Reason
}

func reject(h plumbing.Hash, k RejectKind, format string, args ...any) *Rejection {
	return &Rejection{Commit: h.String(), Kind: k, Reason: fmt.Sprintf(format, args...)}
}

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}
