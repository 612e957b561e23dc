// Package trust decides whether a new revision of the configuration
// repository may be applied: every commit that matters must carry a valid
// signature by a key in the host's local trust root, and the new head must
// descend from the revision applied last.
//
// The config sync calls Verify after each fetch and before it validates and
// applies a new main; it records Result.Head and Result.Signer as the applied
// revision and passes that revision as Request.From next time. A *Rejection
// (errors.As) carries the kind and an operator-readable reason for the audit
// entry and status; any other error means "could not decide" (keep the last
// config, retry later).
//
// The trust root is local (/etc/picket/trust): an ssh-keygen(1)
// allowed_signers file and/or armored OpenPGP public keys, read by LoadDir.
// The repository can extend it through its own trust/allowed_signers, but a
// change there only takes effect for commits after one that a key trusted
// before it has signed (key rotation without a self-appointed signer).
//
// SSH signatures are the ones git writes with gpg.format=ssh (SSHSIG,
// namespace "git"); OpenPGP signatures are the ones gpg writes. X.509
// (gpgsm) signatures and SSH certificates are refused as unsupported.
//
// Nothing here mutates shared state: a TrustSet is immutable once built and
// can be used from several goroutines; a go-git Repository is not safe for
// concurrent use, so Verify must run on the repository's owner goroutine.
package trust
