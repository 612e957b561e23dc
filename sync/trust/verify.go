package trust

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Mode selects which commits of a new revision must be signed.
type Mode int

const (
	// FirstParent (default) verifies every commit on the new head's
	// first-parent chain after the applied revision: what `git log
	// --first-parent From..To` lists. Commits that arrived through a merge
	// are vouched for by the signed merge commit.
	FirstParent Mode = iota
	// Head verifies only the new head.
	Head
	// All verifies every commit reachable from the new head and not from
	// the applied revision (`git rev-list From..To`).
	All
)

// ParseMode reads the config spelling: "first-parent" (or ""), "head", "all".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "first-parent":
		return FirstParent, nil
	case "head":
		return Head, nil
	case "all":
		return All, nil
	}
	return 0, fmt.Errorf("unknown verification mode %q (want first-parent, head or all)", s)
}

func (m Mode) String() string {
	switch m {
	case FirstParent:
		return "first-parent"
	case Head:
		return "head"
	case All:
		return "all"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Request describes one verification: the revision applied last and the
// candidate.
type Request struct {
	From  plumbing.Hash // last applied revision; zero on the first sync ever
	To    plumbing.Hash // candidate head (the fetched main)
	Mode  Mode
	Local *TrustSet // the local trust root (LoadDir); required
	Cache Cache     // optional
}

// Result is what an accepted revision yields.
type Result struct {
	Head plumbing.Hash
	// Signer of To. Zero when To == From (nothing new was verified; the
	// caller already has the signer recorded).
	Signer Signer
	// Verified counts commits checked, including those answered by the
	// cache; Cached counts the cache hits among them.
	Verified int
	Cached   int
	// Trust is the set a commit on top of To would be checked against:
	// Local ∪ To's trust/allowed_signers. Informational (status, audit);
	// Verify recomputes it from From's tree each round, so nothing needs to
	// persist it.
	Trust *TrustSet
}

// maxRepoTrustFile bounds the repository's trust/allowed_signers read.
const maxRepoTrustFile = 1 << 20

// Verify decides whether req.To may be applied after req.From. It returns a
// *Rejection (use errors.As) when the revision must not be applied, and a
// plain error when it could not decide (missing objects, I/O).
//
// Rules, in order:
//
//  1. Anti-rollback: with From set, To must be From or descend from it in
//     git's sense (From is reachable from To through any parents, as `git
//     merge-base --is-ancestor From To`). Otherwise Rollback.
//  2. Which commits are checked: see Mode. On the first sync (From zero),
//     FirstParent and Head check only To, so history from before picket was
//     adopted does not block an install, while the revision applied is
//     still signed; All checks all of To's history (the operator asked for
//     it).
//  3. Trust for commit C: Local ∪ the trust/allowed_signers in the tree of
//     C's first parent P, when P was accepted in this run or is From.
//     Otherwise (C's parent was not checked: Head mode, or a side branch
//     forked before From) Local ∪ From's trust/allowed_signers, the set the
//     host already accepted; on the first sync, Local alone. So a commit
//     that edits trust/allowed_signers is judged by the keys trusted before
//     it, and the edit binds only its descendants.
//  4. Commits are checked oldest first, so trust evolves along the chain.
//
// A commit whose own tree has an unparsable trust/allowed_signers (or one
// using cert-authority) is rejected as TrustChange: it would leave its
// descendants with an undefined trust set.
func Verify(repo *git.Repository, req Request) (*Result, error) {
	if req.Local == nil {
		return nil, errors.New("trust: Verify without a local trust set")
	}
	if req.To.IsZero() {
		return nil, errors.New("trust: Verify without a target revision")
	}
	if req.Mode < FirstParent || req.Mode > All {
		return nil, fmt.Errorf("trust: invalid mode %d", int(req.Mode))
	}
	v := &verifier{
		repo:  repo,
		req:   req,
		after: make(map[plumbing.Hash]*TrustSet),
		blobs: make(map[plumbing.Hash]*TrustSet),
	}
	to, err := repo.CommitObject(req.To)
	if err != nil {
		return nil, fmt.Errorf("trust: new head %s: %w", req.To, err)
	}

	v.fromTrust = req.Local
	if !req.From.IsZero() {
		from, err := repo.CommitObject(req.From)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, reject(req.To, Rollback, "the applied revision %s is not in the repository, so descent from it cannot be established: refused", short(req.From.String()))
		}
		if err != nil {
			return nil, fmt.Errorf("trust: applied revision %s: %w", req.From, err)
		}
		if v.fromTrust, err = v.trustAfter(from); err != nil {
			return nil, err
		}
		if req.To == req.From {
			return &Result{Head: req.To, Trust: v.fromTrust}, nil
		}
		ok, err := v.descends(req.From, to)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, reject(req.To, Rollback, "new head does not descend from the applied revision %s: force-push or rollback refused",
				short(req.From.String()))
		}
	}

	var order []plumbing.Hash // oldest first
	switch {
	case req.Mode == Head, req.Mode == FirstParent && req.From.IsZero():
		order = []plumbing.Hash{req.To}
	case req.Mode == FirstParent:
		order, err = v.firstParentChain(to)
	default:
		order, err = v.allNew(to)
	}
	if err != nil {
		return nil, err
	}

	res := &Result{Head: req.To}
	for i, h := range order {
		c := to
		if h != req.To {
			if c, err = repo.CommitObject(h); err != nil {
				return nil, fmt.Errorf("trust: commit %s: %w", h, err)
			}
		}
		s, cached, err := v.check(c)
		if err != nil {
			return nil, err
		}
		res.Verified++
		if cached {
			res.Cached++
		}
		after, err := v.trustAfter(c)
		if err != nil {
			return nil, err
		}
		v.after[h] = after
		if req.Mode == FirstParent && i > 0 {
			// On a first-parent chain only the previous commit's set is
			// needed again; keep memory flat on long ranges.
			delete(v.after, order[i-1])
		}
		if h == req.To {
			res.Signer, res.Trust = s, after
		}
	}
	return res, nil
}

type verifier struct {
	repo      *git.Repository
	req       Request
	fromTrust *TrustSet                   // Local ∪ file(From), or Local on a first sync
	after     map[plumbing.Hash]*TrustSet // accepted commit → set for its children
	blobs     map[plumbing.Hash]*TrustSet // repository file blob → Local ∪ it
}

// base is the trust set commit c is judged by (rule 3 of Verify).
func (v *verifier) base(c *object.Commit) *TrustSet {
	if len(c.ParentHashes) > 0 {
		p := c.ParentHashes[0]
		if t, ok := v.after[p]; ok {
			return t
		}
	}
	return v.fromTrust
}

// check verifies one commit, through the cache when there is one.
func (v *verifier) check(c *object.Commit) (Signer, bool, error) {
	base := v.base(c)
	key := c.Hash.String()
	if v.req.Cache != nil {
		if s, ok := v.req.Cache.Get(key, base.Hash()); ok {
			return s, true, nil
		}
	}
	s, err := base.VerifyCommit(c)
	if err != nil {
		var rej *Rejection
		if errors.As(err, &rej) && rej.Kind == Untrusted {
			// Name the rotation attack precisely: the key is trusted only
			// by the trust/allowed_signers this very commit writes.
			if after, terr := v.trustAfter(c); terr == nil && after != base {
				if _, aerr := after.VerifyCommit(c); aerr == nil {
					return Signer{}, false, reject(c.Hash, TrustChange,
						"%s; the key is only added to %s by this very commit, and a trust change must be signed by a key trusted before it",
						rej.Reason, RepoAllowedSigners)
				}
			}
		}
		return Signer{}, false, err
	}
	if v.req.Cache != nil && s.Format == "ssh" {
		v.req.Cache.Put(key, base.Hash(), s)
	}
	return s, false, nil
}

// trustAfter is Local ∪ the trust/allowed_signers in c's tree: the set c's
// children are judged by. Parsed sets are memoised by blob hash because the
// file rarely changes along a range.
func (v *verifier) trustAfter(c *object.Commit) (*TrustSet, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("trust: tree of %s: %w", c.Hash, err)
	}
	ent, err := tree.FindEntry(RepoAllowedSigners)
	if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return v.req.Local, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust: %s in %s: %w", RepoAllowedSigners, c.Hash, err)
	}
	if ent.Mode != filemode.Regular && ent.Mode != filemode.Executable {
		return nil, reject(c.Hash, TrustChange, "%s is not a regular file (mode %s)", RepoAllowedSigners, ent.Mode)
	}
	if t, ok := v.blobs[ent.Hash]; ok {
		return t, nil
	}
	blob, err := v.repo.BlobObject(ent.Hash)
	if err != nil {
		return nil, fmt.Errorf("trust: %s in %s: %w", RepoAllowedSigners, c.Hash, err)
	}
	if blob.Size > maxRepoTrustFile {
		return nil, reject(c.Hash, TrustChange, "%s is %d bytes, more than the %d allowed", RepoAllowedSigners, blob.Size, maxRepoTrustFile)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("trust: %s in %s: %w", RepoAllowedSigners, c.Hash, err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("trust: %s in %s: %w", RepoAllowedSigners, c.Hash, err)
	}
	t, err := v.req.Local.With(data, RepoAllowedSigners)
	if err != nil {
		return nil, reject(c.Hash, TrustChange, "leaves an invalid %s: %v", RepoAllowedSigners, err)
	}
	v.blobs[ent.Hash] = t
	return t, nil
}

// descends reports whether from is reachable from to. Depth-first with
// first parents first, so the usual case (from on to's first-parent chain)
// touches only the new commits.
func (v *verifier) descends(from plumbing.Hash, to *object.Commit) (bool, error) {
	seen := map[plumbing.Hash]bool{to.Hash: true}
	stack := []plumbing.Hash{to.Hash}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if h == from {
			return true, nil
		}
		c, err := v.commit(h)
		if err != nil {
			return false, err
		}
		for i := len(c.ParentHashes) - 1; i >= 0; i-- {
			if p := c.ParentHashes[i]; !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return false, nil
}

// firstParentChain lists To's first-parent chain down to (excluding) the
// first commit reachable from From, oldest first. Usually From itself is on
// the chain and the walk stops there; otherwise (From was merged in as a
// second parent) From's ancestry is needed to know where to stop.
func (v *verifier) firstParentChain(to *object.Commit) ([]plumbing.Hash, error) {
	var chain []plumbing.Hash
	c := to
	for {
		if c.Hash == v.req.From {
			slices.Reverse(chain)
			return chain, nil
		}
		chain = append(chain, c.Hash)
		if len(c.ParentHashes) == 0 {
			break
		}
		var err error
		if c, err = v.commit(c.ParentHashes[0]); err != nil {
			return nil, err
		}
	}
	hidden, err := v.ancestors(v.req.From)
	if err != nil {
		return nil, err
	}
	for i, h := range chain {
		if hidden[h] {
			chain = chain[:i]
			break
		}
	}
	slices.Reverse(chain)
	return chain, nil
}

// allNew lists commits reachable from to and not from From, parents before
// children (a post-order walk), so every commit's first parent is either
// checked before it or already applied.
func (v *verifier) allNew(to *object.Commit) ([]plumbing.Hash, error) {
	hidden := map[plumbing.Hash]bool{}
	if !v.req.From.IsZero() {
		var err error
		if hidden, err = v.ancestors(v.req.From); err != nil {
			return nil, err
		}
	}
	type frame struct {
		h       plumbing.Hash
		parents []plumbing.Hash
		next    int
	}
	var order []plumbing.Hash
	seen := map[plumbing.Hash]bool{to.Hash: true}
	stack := []frame{{h: to.Hash, parents: to.ParentHashes}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == len(f.parents) {
			order = append(order, f.h)
			stack = stack[:len(stack)-1]
			continue
		}
		p := f.parents[f.next]
		f.next++
		if seen[p] || hidden[p] {
			continue
		}
		seen[p] = true
		c, err := v.commit(p)
		if err != nil {
			return nil, err
		}
		stack = append(stack, frame{h: p, parents: c.ParentHashes})
	}
	return order, nil
}

// ancestors is the set of commits reachable from h, h included. Only the
// All mode and the rare FirstParent case above need it; it costs one
// decode per commit of history (about 150 ms for 5,000 commits, which is
// why All is the slow mode).
func (v *verifier) ancestors(h plumbing.Hash) (map[plumbing.Hash]bool, error) {
	set := map[plumbing.Hash]bool{h: true}
	stack := []plumbing.Hash{h}
	for len(stack) > 0 {
		c, err := v.commit(stack[len(stack)-1])
		stack = stack[:len(stack)-1]
		if err != nil {
			return nil, err
		}
		for _, p := range c.ParentHashes {
			if !set[p] {
				set[p] = true
				stack = append(stack, p)
			}
		}
	}
	return set, nil
}

// commit loads a commit, turning a missing object into an explanation: the
// local clone lacks history verification needs.
func (v *verifier) commit(h plumbing.Hash) (*object.Commit, error) {
	c, err := v.repo.CommitObject(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("trust: commit %s is missing from the local clone (shallow fetch?): history needed for verification is incomplete: %w", short(h.String()), err)
	}
	if err != nil {
		return nil, fmt.Errorf("trust: commit %s: %w", h, err)
	}
	return c, nil
}
