package proposals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// KindProposal is the audit kind of a proposal's life: queued, pushed,
// merged, expired.
const KindProposal = audit.KindProposal

// Proposal is a stored proposal with its document.
type Proposal struct {
	state.ProposalRow
	Doc Doc
}

// Decode reads a stored row.
func Decode(r state.ProposalRow) (Proposal, error) {
	p := Proposal{ProposalRow: r}
	if err := json.Unmarshal(r.Doc, &p.Doc); err != nil {
		return p, fmt.Errorf("proposals: proposal %d: %w", r.ID, err)
	}
	return p, nil
}

// List returns stored proposals, oldest first; statuses filter when given.
func List(ctx context.Context, st *state.Store, statuses ...string) ([]Proposal, error) {
	rows, err := st.Proposals(ctx, statuses...)
	if err != nil {
		return nil, err
	}
	out := make([]Proposal, 0, len(rows))
	for _, r := range rows {
		p, err := Decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Queue records a proposal for d within tx (the verdict's transaction), to
// be pushed by the syncer. A live proposal for the same pattern is reused:
// its id is returned with dup set. expires is when the local suppression
// ends: a proposal not merged by then expires with it.
func Queue(ctx context.Context, tx *state.Tx, d Doc, expires, now time.Time) (id int64, dup bool, err error) {
	pat := Pattern(d.Kind, d.Value)
	live, err := tx.Proposals(ctx, StatusQueued, StatusOpen)
	if err != nil {
		return 0, false, err
	}
	for _, r := range live {
		if r.Pattern == pat {
			// The same pattern again: the proposal stands; its suppression
			// window follows the newest verdict.
			if expires.After(r.Expires) {
				r.Expires, r.Updated = expires, now
				if err := tx.PutProposal(ctx, r); err != nil {
					return 0, false, err
				}
			}
			return r.ID, true, nil
		}
	}
	doc, _ := json.Marshal(d)
	id, err = tx.AddProposal(ctx, state.ProposalRow{Pattern: pat, Feedback: d.Feedback, Status: StatusQueued, Doc: doc,
		Created: now, Updated: now, Expires: expires})
	if err != nil {
		return 0, false, err
	}
	// The branch name carries the id, known only now.
	r := state.ProposalRow{ID: id, Pattern: pat, Feedback: d.Feedback, Branch: Branch(d.Host, id), Status: StatusQueued, Doc: doc,
		Created: now, Updated: now, Expires: expires}
	if err := tx.PutProposal(ctx, r); err != nil {
		return 0, false, err
	}
	_, err = tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindProposal, Subject: fmt.Sprintf("proposal:%d", id),
		Message: fmt.Sprintf("proposal %d queued: whitelist %s %s (branch %s), until %s unless merged", id, d.Kind, d.Value, r.Branch, expires.UTC().Format(time.RFC3339)),
		Data:    doc})
	return id, false, err
}

// Settle ends proposals against the applied policy: every live proposal
// that p covers is merged and the local suppressions of its entity end
// (the config now carries the whitelist). It returns how many merged.
func Settle(ctx context.Context, st *state.Store, p *schema.Policy, revision string, now time.Time) (int, error) {
	live, err := List(ctx, st, StatusQueued, StatusOpen)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pr := range live {
		if !Covered(p, pr.Doc) {
			continue
		}
		how := "merged in " + short(revision)
		if pr.Status == StatusQueued {
			how = "already in " + short(revision) + " before it was pushed"
		}
		if err := end(ctx, st, pr, StatusMerged, how, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Expire ends live proposals whose suppression window is over.
func Expire(ctx context.Context, st *state.Store, now time.Time) (int, error) {
	live, err := List(ctx, st, StatusQueued, StatusOpen)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pr := range live {
		if pr.Expires.IsZero() || now.Before(pr.Expires) {
			continue
		}
		if err := end(ctx, st, pr, StatusExpired, "not merged before its local suppression expired", now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// end closes a proposal and the suppressions of its entity, audited.
func end(ctx context.Context, st *state.Store, pr Proposal, status, how string, now time.Time) error {
	entity := Pattern(pr.Doc.Kind, pr.Doc.Value)
	return st.Update(ctx, func(tx *state.Tx) error {
		pr.Status, pr.Updated, pr.Note = status, now, how
		if err := tx.PutProposal(ctx, pr.ProposalRow); err != nil {
			return err
		}
		sups, err := tx.Suppressions(ctx, true)
		if err != nil {
			return err
		}
		ended := 0
		for _, s := range sups {
			if s.Kind != SuppressKind || s.Entity != entity {
				continue
			}
			ok, err := tx.EndSuppression(ctx, s.ID, now, "proposal "+status+": "+how)
			if err != nil {
				return err
			}
			if ok {
				ended++
			}
		}
		data, _ := json.Marshal(map[string]any{"proposal": pr.ID, "branch": pr.Branch, "status": status, "suppressions_ended": ended})
		_, err = tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindProposal, Subject: fmt.Sprintf("proposal:%d", pr.ID),
			Message: fmt.Sprintf("proposal %d (%s %s) %s: %s; %d local suppression(s) ended", pr.ID, pr.Doc.Kind, pr.Doc.Value, status, how, ended),
			Data:    data})
		return err
	})
}

// SuppressKind is the suppressions table's kind for a (rule, entity)
// suppression; feedback owns the table, the constant is shared here so a
// merge ends exactly those.
const SuppressKind = "suppress"

// MarkPushed records that a proposal's branch reached the remote.
func MarkPushed(ctx context.Context, st *state.Store, pr Proposal, commit string, now time.Time) error {
	return st.Update(ctx, func(tx *state.Tx) error {
		pr.Status, pr.Commit, pr.Updated, pr.Note = StatusOpen, commit, now, "pushed"
		doc, _ := json.Marshal(pr.Doc)
		pr.ProposalRow.Doc = doc
		if err := tx.PutProposal(ctx, pr.ProposalRow); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindProposal, Subject: fmt.Sprintf("proposal:%d", pr.ID),
			Message: fmt.Sprintf("proposal %d pushed: branch %s, commit %s changes %s", pr.ID, pr.Branch, short(commit), pr.Doc.File)})
		return err
	})
}

// ErrNotLive: the proposal is merged or expired.
var ErrNotLive = errors.New("proposals: proposal is not live")

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
