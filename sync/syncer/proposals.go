package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/sync/proposals"
	"github.com/picket-agent/picket/sync/treefs"
)

// syncProposals runs once the remote answered: proposals the applied
// config now carries are marked merged (their local suppressions end), then
// queued proposals are built on main's head and pushed, each to its own
// branch. A proposal that fails to push stays queued for the next cycle;
// one whose change main already has is settled without a branch.
func (s *Syncer) syncProposals(ctx context.Context, head plumbing.Hash) error {
	now := s.cfg.Now()
	var ap Applied
	ok, err := s.cfg.Store.MetaJSON(ctx, MetaApplied, &ap)
	if err != nil {
		return err
	}
	if ok && len(ap.Policy) > 0 {
		var pol schema.Policy
		if err := json.Unmarshal(ap.Policy, &pol); err != nil {
			return fmt.Errorf("sync: applied policy: %w", err)
		}
		if n, err := proposals.Settle(ctx, s.cfg.Store, &pol, ap.Revision, now); err != nil {
			return err
		} else if n > 0 {
			s.log.Info("proposals merged", "count", n, "revision", ap.Revision)
		}
	}
	queued, err := proposals.List(ctx, s.cfg.Store, proposals.StatusQueued)
	if err != nil || len(queued) == 0 || head.IsZero() {
		return err
	}
	commit, err := s.remote.Repo().CommitObject(head)
	if err != nil {
		return fmt.Errorf("sync: read main %s: %w", short(head.String()), err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("sync: read main tree: %w", err)
	}
	fsys := treefs.New(tree, commit.Committer.When)
	var errs []error
	for _, pr := range queued {
		h := plumbing.NewHash(pr.Commit)
		if pr.Commit == "" {
			ch, covered, err := proposals.Plan(fsys, s.cfg.Hostname, pr.Doc)
			if covered {
				// main has it but the applied config did not yet (not
				// signed, or not this host's): the merge settles it later.
				s.log.Info("proposal already in main; not pushed", "proposal", pr.ID)
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("sync: proposal %d: %w", pr.ID, err))
				continue
			}
			pr.Doc.File, pr.Doc.Base = ch.Path, head.String()
			who := object.Signature{Name: "picket@" + s.cfg.Hostname, Email: "picket@" + s.cfg.Hostname, When: now}
			if h, err = proposals.Build(s.remote.Repo(), head, ch, proposals.Message(pr.Doc, ch), who, s.key.GitSigner()); err != nil {
				errs = append(errs, fmt.Errorf("sync: proposal %d: %w", pr.ID, err))
				continue
			}
		}
		if err := s.remote.Push(ctx, h, pr.Branch); err != nil {
			// Offline: stays queued; the same commit is rebuilt next time
			// (the commit hash is recorded only once pushed, so a retry
			// never leaves two different commits on the remote).
			return errors.Join(append(errs, fmt.Errorf("sync: push proposal %d: %w", pr.ID, err))...)
		}
		if err := proposals.MarkPushed(ctx, s.cfg.Store, pr, h.String(), now); err != nil {
			return err
		}
		s.log.Info("proposal pushed", "proposal", pr.ID, "branch", pr.Branch, "commit", h.String())
	}
	return errors.Join(errs...)
}
