package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// Relearning: `picket baseline relearn` writes a RelearnRequest into
// state (with an audit entry), whether the agent runs or not. The running
// agent looks for it on every heartbeat (a few seconds), a stopped one at
// its next start. It then learns a new model from scratch for the period
// and promotes it as the next version (reason "relearn"; audited and
// exported to the host branch like version 1).
//
// While it relearns the agent is NOT read-only, unlike the first learning
// period: the deviation rules stay on against the current version and the
// invariants and responder work as always. A relearn follows a known
// change (a new application, a migration); switching protection off for a
// day because of it would be the wrong trade. The new model learns from
// every event, deviations included, as the first learning period does.
const (
	// MetaRelearnRequest holds the last RelearnRequest.
	MetaRelearnRequest = "baseline_relearn_request"
	// MetaRelearn holds the RelearnStatus of the running (or last) relearn.
	MetaRelearn = "baseline_relearn"
	// MetaRelearnModel holds the model learned so far by a running relearn.
	MetaRelearnModel = "baseline_relearn_model"
)

// MaxRelearnPeriod bounds a relearn as the schema bounds learning.period.
const MaxRelearnPeriod = 72 * time.Hour

// RelearnRequest asks the agent to learn a new baseline.
type RelearnRequest struct {
	// ID orders requests (the request time in nanoseconds): a request is
	// acted on once.
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Period schema.Duration `json:"period"` // 0: the policy's learning period
	By     string          `json:"by,omitempty"`
}

// RelearnStatus is the state of the current or last relearn.
type RelearnStatus struct {
	Request  int64           `json:"request"`
	Active   bool            `json:"active"`
	Started  time.Time       `json:"started"`
	Ends     time.Time       `json:"ends"`
	Period   schema.Duration `json:"period"`
	Progress float64         `json:"progress"`
	// Promoted is the version the relearn ended in (0 while it runs or
	// when it was refused).
	Promoted int    `json:"promoted,omitempty"`
	Note     string `json:"note,omitempty"`
}

// RequestRelearn records a relearn request and its audit entry in one
// transaction.
func RequestRelearn(ctx context.Context, st *state.Store, period time.Duration, by string, now time.Time) (RelearnRequest, error) {
	if period < 0 || period > MaxRelearnPeriod {
		return RelearnRequest{}, fmt.Errorf("agent: relearn period %s not between 0 and %s", period, MaxRelearnPeriod)
	}
	req := RelearnRequest{ID: now.UnixNano(), At: now.UTC(), Period: schema.Duration(period), By: by}
	what := "the policy's learning period"
	if period > 0 {
		what = period.String()
	}
	err := st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaRelearnRequest, req); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindLearning, Subject: "baseline:relearn",
			Message: fmt.Sprintf("baseline relearn requested by %s for %s", orSomeone(by), what)})
		return err
	})
	return req, err
}

func orSomeone(s string) string {
	if s == "" {
		return "an operator"
	}
	return s
}

// LoadRelearn reads the pending request and the relearn status.
func LoadRelearn(ctx context.Context, st *state.Store) (RelearnRequest, RelearnStatus, error) {
	var req RelearnRequest
	var rs RelearnStatus
	if _, err := st.MetaJSON(ctx, MetaRelearnRequest, &req); err != nil {
		return req, rs, err
	}
	_, err := st.MetaJSON(ctx, MetaRelearn, &rs)
	return req, rs, err
}

func (rs RelearnStatus) at(now time.Time) RelearnStatus {
	if rs.Active && rs.Ends.After(rs.Started) {
		rs.Progress = min(1, max(0, float64(now.Sub(rs.Started))/float64(rs.Ends.Sub(rs.Started))))
	}
	return rs
}

// resumeRelearn restores a relearn that was running when the agent
// stopped (its model as last saved).
func (r *runner) resumeRelearn(ctx context.Context) error {
	var rs RelearnStatus
	if _, err := r.st.MetaJSON(ctx, MetaRelearn, &rs); err != nil {
		return err
	}
	r.relearn = rs
	if !rs.Active {
		return nil
	}
	var snap baseline.Snapshot
	ok, err := r.st.MetaJSON(ctx, MetaRelearnModel, &snap)
	m := baseline.NewModel(baseline.DefaultCaps())
	if err == nil && ok {
		if mm, err := baseline.FromSnapshot(snap, baseline.DefaultCaps()); err == nil {
			m = mm
		} else {
			r.a.log.Warn("saved relearn model unreadable; relearning goes on from now", "err", err)
		}
	}
	r.relearnModel = m
	return nil
}

// relearnTick starts a requested relearn, saves its model now and then,
// and promotes it at the end of its period.
func (r *runner) relearnTick(ctx context.Context, now time.Time) error {
	var req RelearnRequest
	if _, err := r.st.MetaJSON(ctx, MetaRelearnRequest, &req); err != nil {
		return err
	}
	if req.ID > r.relearn.Request {
		if err := r.startRelearn(ctx, req, now); err != nil {
			return fmt.Errorf("agent: start relearn: %w", err)
		}
	}
	if !r.relearn.Active {
		return nil
	}
	if now.Before(r.relearn.Ends) {
		if now.Sub(r.relearnSaved) >= learningSaveEvery {
			return r.saveRelearn(ctx, now, true)
		}
		return nil
	}
	v, err := r.promote(ctx, r.relearnModel, "relearn", now)
	if err != nil {
		return fmt.Errorf("agent: promote relearned baseline: %w", err)
	}
	r.a.log.Info("relearned baseline promoted", "version", v.N, "keys", r.relearnModel.Len())
	r.relearn.Active, r.relearn.Promoted, r.relearn.Progress = false, v.N, 1
	r.relearnModel = nil
	return r.saveRelearn(ctx, now, false)
}

func (r *runner) startRelearn(ctx context.Context, req RelearnRequest, now time.Time) error {
	period := req.Period.D()
	if period <= 0 {
		period = r.policy.Learning.Period.D()
	}
	if period <= 0 {
		period = 48 * time.Hour // the schema's default: learning was skipped
	}
	rs := RelearnStatus{Request: req.ID, Started: now.UTC(), Ends: now.Add(period).UTC(), Period: schema.Duration(period)}
	msg := fmt.Sprintf("baseline relearn started: learning from scratch for %s, until %s; the deviation rules stay on against the current version",
		period, rs.Ends.Format(time.RFC3339))
	if _, ok := r.versions.Latest(); !ok || r.learning {
		// The first learning period is still running (or never promoted):
		// it is the relearn.
		rs.Note = "refused: the first learning period has not promoted a baseline yet"
		msg = "baseline relearn not started: " + rs.Note
	} else {
		rs.Active = true
		r.relearnModel = baseline.NewModel(baseline.DefaultCaps())
	}
	r.relearn = rs
	return r.st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaRelearn, rs); err != nil {
			return err
		}
		if rs.Active {
			if err := tx.SetMetaJSON(ctx, MetaRelearnModel, r.relearnModel.Snapshot()); err != nil {
				return err
			}
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindLearning, Subject: "baseline:relearn", Message: msg})
		return err
	})
}

// saveRelearn stores the status and, while it runs, the model.
func (r *runner) saveRelearn(ctx context.Context, now time.Time, withModel bool) error {
	r.relearnSaved = now
	rs := r.relearn.at(now)
	return r.st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaRelearn, rs); err != nil {
			return err
		}
		if withModel && r.relearnModel != nil {
			return tx.SetMetaJSON(ctx, MetaRelearnModel, r.relearnModel.Snapshot())
		}
		if !rs.Active {
			// Done: the model lives on as a version.
			return tx.SetMeta(ctx, MetaRelearnModel, "null")
		}
		return nil
	})
}
