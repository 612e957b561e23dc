package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/state"
)

// Drift learning (learning.drift, off by default): after the first
// promotion the deviation rules report what they find new to a
// baseline.Drift, which counts the distinct days each key is reported on.
// On every heartbeat the runner keeps it attached and active only while
// drift is enabled, a version is promoted, and neither the learning
// period nor a relearn runs; about once a minute it folds the keys seen on
// min_days days that no open incident involves; and once `every` has
// passed since the last promotion it promotes the current version plus
// those keys as a new version (reason "drift") through promote, like a
// relearn (audit entry, host-branch export), then audits the list of what
// was added. The counts are kept in state so a restart does not lose
// them; a relearn's (or any other) promotion starts them over.

// MetaDrift holds the drift learner's state (baseline.DriftState).
const MetaDrift = "baseline_drift"

const (
	// driftFoldEvery spaces the folds: each walks the open incidents.
	driftFoldEvery = time.Minute
	// driftSaveEvery bounds how stale saved counts get; a changed day
	// count is saved on the next heartbeat.
	driftSaveEvery = learningSaveEvery
	// driftListed bounds the keys an audit message names (its data lists
	// them all).
	driftListed = 10
)

// driftRun is the runner's drift learner and its timers.
type driftRun struct {
	d             *baseline.Drift
	folded, saved time.Time
}

// loadDrift resumes the saved state; an unreadable one is logged and
// replaced (counts are cheap to relearn, a stuck agent is not).
func (r *runner) loadDrift(ctx context.Context) (*driftRun, error) {
	cfg := baseline.DriftConfigFromPolicy(r.policy)
	raw, ok, err := r.st.Meta(ctx, MetaDrift)
	if err != nil {
		return nil, err
	}
	dr := &driftRun{d: baseline.NewDrift(cfg)}
	if !ok || raw == "" || raw == "null" {
		return dr, nil
	}
	var s baseline.DriftState
	err = json.Unmarshal([]byte(raw), &s)
	if err == nil {
		var d *baseline.Drift
		if d, err = baseline.RestoreDrift(s, cfg); err == nil {
			dr.d = d
		}
	}
	if err != nil {
		r.a.log.Warn("saved drift counts unreadable; counting from now", "err", err)
	}
	return dr, nil
}

// driftTick runs drift learning on a heartbeat.
func (r *runner) driftTick(ctx context.Context, now time.Time) error {
	if r.drift == nil {
		dr, err := r.loadDrift(ctx)
		if err != nil {
			return fmt.Errorf("agent: load drift state: %w", err)
		}
		r.drift = dr
	}
	d := r.drift.d
	cfg := baseline.DriftConfigFromPolicy(r.policy)
	d.SetConfig(cfg)
	latest, promoted := r.versions.Latest()
	active := cfg.Enabled && promoted && r.deviations != nil && !r.learning && !r.promotePending && !r.relearn.Active
	d.SetActive(active)
	if active && d.Version() != latest.N {
		// First use, or another promotion (a relearn) since the counts
		// began: they no longer refer to the baseline.
		d.Reset(latest.N, latest.At)
	}
	if r.deviations != nil {
		// promote replaces the detector; attaching is idempotent.
		r.deviations.RecordDrift(d)
	}
	if active {
		if now.Sub(r.drift.folded) >= driftFoldEvery {
			r.drift.folded = now
			for _, c := range d.Fold(now, r.pl.Open()) {
				r.a.log.Info("baseline drift: key folded in, promoted with the next drift version", "key", c.String())
			}
		}
		if d.Due(now) {
			if err := r.promoteDrift(ctx, latest, now); err != nil {
				return err
			}
		}
	}
	return r.saveDrift(ctx, now)
}

// promoteDrift promotes prev plus the pending keys as a new version and
// audits what was added.
func (r *runner) promoteDrift(ctx context.Context, prev baseline.Version, now time.Time) error {
	d := r.drift.d
	m, err := prev.Model(baseline.DefaultCaps())
	if err != nil {
		return fmt.Errorf("agent: drift: rebuild baseline version %d: %w", prev.N, err)
	}
	added := d.Apply(m)
	v, err := r.promote(ctx, m, "drift", now)
	if err != nil {
		return fmt.Errorf("agent: promote drift baseline: %w", err)
	}
	d.Promoted(v.N, now)
	r.deviations.RecordDrift(d)
	lines := make([]string, len(added))
	for i, c := range added {
		lines[i] = c.String()
	}
	shown := lines[:min(len(lines), driftListed)]
	msg := fmt.Sprintf("baseline version %d (drift) adds %d keys reported as new on at least %d distinct days with no open incident involving them: %s",
		v.N, len(lines), baseline.DriftConfigFromPolicy(r.policy).MinDays, strings.Join(shown, "; "))
	if len(lines) > len(shown) {
		msg += fmt.Sprintf("; and %d more", len(lines)-len(shown))
	}
	data, _ := json.Marshal(map[string]any{"version": v.N, "reason": "drift", "added": lines})
	st := d.State()
	err = r.st.Update(ctx, func(tx *state.Tx) error {
		if _, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindBaseline, Subject: fmt.Sprintf("baseline:%d", v.N),
			Message: msg, Data: data}); err != nil {
			return err
		}
		return tx.SetMetaJSON(ctx, MetaDrift, st)
	})
	if err != nil {
		return fmt.Errorf("agent: audit drift baseline %d: %w", v.N, err)
	}
	d.Saved()
	r.drift.saved = now
	r.a.log.Info("drift baseline promoted", "version", v.N, "added", len(lines))
	return nil
}

// saveDrift stores the counts when a day count changed, or every few
// minutes when only counts did.
func (r *runner) saveDrift(ctx context.Context, now time.Time) error {
	changed, urgent := r.drift.d.Unsaved()
	if !urgent && (!changed || now.Sub(r.drift.saved) < driftSaveEvery) {
		return nil
	}
	st := r.drift.d.State()
	if err := r.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, MetaDrift, st) }); err != nil {
		return fmt.Errorf("agent: save drift state: %w", err)
	}
	r.drift.d.Saved()
	r.drift.saved = now
	return nil
}
