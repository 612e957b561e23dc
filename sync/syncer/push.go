package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/audit/checkpoint"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/hostbranch"
	"github.com/picket-agent/picket/sync/remote"
)

// maxBatchesPerCycle bounds one cycle's work so a long offline backlog is
// pushed in steps and the loop stays responsive.
const maxBatchesPerCycle = 200

func (s *Syncer) localRef() plumbing.ReferenceName {
	return plumbing.NewBranchReferenceName(s.status.HostBranch)
}

func (s *Syncer) remoteRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", s.status.HostBranch)
}

func (s *Syncer) refHash(name plumbing.ReferenceName) plumbing.Hash {
	ref, err := s.remote.Repo().Reference(name, true)
	if err != nil {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

func (s *Syncer) setLocal(h plumbing.Hash) error {
	return s.remote.Repo().Storer.SetReference(plumbing.NewHashReference(s.localRef(), h))
}

// push commits the audit entries not yet committed to the host branch and
// pushes it. It returns how many entries reached the remote.
func (s *Syncer) push(ctx context.Context) (int, error) {
	tip := s.refHash(s.localRef())
	if tip.IsZero() {
		// A new local clone: continue the remote's history if there is one,
		// and re-commit whatever was not confirmed pushed.
		tip = s.refHash(s.remoteRef())
		s.status.CommittedSeq = s.status.PushedSeq
	}
	tip, err := s.commitPending(ctx, tip, s.status.CommittedSeq)
	if err != nil {
		return 0, err
	}
	if tip.IsZero() || tip == s.refHash(s.remoteRef()) {
		s.status.PushedSeq = s.status.CommittedSeq
		return 0, nil
	}
	err = s.remote.Push(ctx, tip, s.status.HostBranch)
	if errors.Is(err, remote.ErrNonFastForward) {
		tip, err = s.rebase(ctx)
		if err == nil {
			err = s.remote.Push(ctx, tip, s.status.HostBranch)
		}
	}
	now := s.cfg.Now()
	if err != nil {
		s.status.LastPushError = err.Error()
		return 0, fmt.Errorf("sync: push %s: %w", s.status.HostBranch, err)
	}
	n := int(s.status.CommittedSeq - s.status.PushedSeq)
	s.status.PushedSeq = s.status.CommittedSeq
	if s.baselineCommitted > s.status.BaselineVersion {
		s.status.BaselineVersion = s.baselineCommitted
	}
	s.status.LastPush, s.status.LastPushError = now, ""
	// The remote-tracking ref now equals what we pushed.
	s.remote.Repo().Storer.SetReference(plumbing.NewHashReference(s.remoteRef(), tip))
	return n, nil
}

// commitPending commits audit entries after seq on top of tip, in batches,
// each with a signed checkpoint of the chain head it reaches.
func (s *Syncer) commitPending(ctx context.Context, tip plumbing.Hash, seq int64) (plumbing.Hash, error) {
	size := s.cfg.Bootstrap.Repository.BatchSize
	if size <= 0 {
		size = 500
	}
	for i := 0; i < maxBatchesPerCycle; i++ {
		var entries []audit.Entry
		err := s.cfg.Store.EachAudit(ctx, state.AuditFilter{Since: seq, Limit: size}, func(e audit.Entry) error {
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return tip, err
		}
		if len(entries) == 0 {
			return tip, nil
		}
		last := entries[len(entries)-1]
		now := s.cfg.Now()
		signed, err := checkpoint.Sign(s.key.Signer(), checkpoint.Checkpoint{Host: s.cfg.Hostname, Count: last.Seq, Seq: last.Seq,
			Head: last.Hash, Time: now, KeyID: s.key.Fingerprint()})
		if err != nil {
			return tip, fmt.Errorf("sync: sign checkpoint: %w", err)
		}
		cpJSON, _ := json.Marshal(signed)
		if err := s.cfg.Store.Update(ctx, func(tx *state.Tx) error { return tx.AddCheckpoint(ctx, last.Seq, cpJSON) }); err != nil {
			return tip, err
		}
		b := hostbranch.Batch{Host: s.cfg.Hostname, Audit: entries, Checkpoints: [][]byte{cpJSON}}
		// A new baseline version goes out with the batch that carries its
		// audit entry: `git log -p baseline/` then shows each promotion.
		if vs, err := baseline.Load(ctx, s.cfg.Store); err == nil {
			if v, ok := vs.Latest(); ok && v.N > s.status.BaselineVersion {
				b.Baselines = map[string][]byte{}
				for k, doc := range v.Kinds {
					b.Baselines[k] = doc
				}
				// Marked pushed only once the push succeeds, so a rebase
				// after a non-fast-forward carries the files again.
				s.baselineCommitted = v.N
			}
		}
		if s.cfg.StatusJSON != nil {
			b.Status = s.cfg.StatusJSON()
		}
		next, err := hostbranch.Commit(s.remote.Repo(), tip, b,
			hostbranch.Signature{Name: "picket@" + s.cfg.Hostname, Email: "picket@" + s.cfg.Hostname, When: now}, s.key.GitSigner())
		if err != nil {
			return tip, fmt.Errorf("sync: commit to %s: %w", s.status.HostBranch, err)
		}
		if err := s.setLocal(next); err != nil {
			return tip, fmt.Errorf("sync: update %s: %w", s.status.HostBranch, err)
		}
		tip, seq = next, last.Seq
		s.status.CommittedSeq = seq
		s.saveStatus()
	}
	return tip, nil
}

// rebase handles a host branch that moved on the remote (host re-imaged,
// someone pushed): fetch it, re-apply every entry not confirmed pushed on
// top of the remote's tip (appends are idempotent by seq), and audit it.
// The remote's history is kept; nothing is force-pushed.
func (s *Syncer) rebase(ctx context.Context) (plumbing.Hash, error) {
	if _, err := s.remote.Fetch(ctx, s.status.HostBranch); err != nil {
		return plumbing.ZeroHash, err
	}
	remoteTip := s.refHash(s.remoteRef())
	oldTip := s.refHash(s.localRef())
	tip, err := s.commitPending(ctx, remoteTip, s.status.PushedSeq)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	now := s.cfg.Now()
	msg := fmt.Sprintf("host branch %s had moved on the remote to %s; the local commits up to %s were re-applied on top of it (entries after %d), nothing was force-pushed",
		s.status.HostBranch, short(remoteTip.String()), short(oldTip.String()), s.status.PushedSeq)
	s.log.Warn(msg)
	err = s.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindHostBranchRebased, Subject: "branch:" + s.status.HostBranch, Message: msg})
		return err
	})
	return tip, err
}

// KindHostBranchRebased is the audit kind of a host-branch divergence.
const KindHostBranchRebased = "sync.rebased"
