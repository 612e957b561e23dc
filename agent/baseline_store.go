package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/state"
)

// MetaBaselines holds the promoted baseline versions (see
// baseline.MetaVersions).
const MetaBaselines = baseline.MetaVersions

// maxBaselineVersions bounds the versions kept in state; git keeps the
// whole history on the host branch.
const maxBaselineVersions = 10

// MetaLearning holds the model learned so far while the learning period
// runs, so a restart during the period does not start learning over.
const MetaLearning = "baseline_learning"

// learningSaveEvery bounds what a crash during learning can lose.
const learningSaveEvery = 5 * time.Minute

func (r *runner) saveLearning(ctx context.Context, now time.Time) error {
	r.learningSaved = now
	snap := r.model.Snapshot()
	return r.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, MetaLearning, snap) })
}

func loadLearning(ctx context.Context, st *state.Store) (*baseline.Model, bool, error) {
	var snap baseline.Snapshot
	ok, err := st.MetaJSON(ctx, MetaLearning, &snap)
	if err != nil || !ok {
		return nil, false, err
	}
	m, err := baseline.FromSnapshot(snap, baseline.DefaultCaps())
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// LoadBaselines reads the promoted versions from state.
func LoadBaselines(ctx context.Context, st *state.Store) (*baseline.Versions, error) {
	return baseline.Load(ctx, st)
}

// promote makes m the new baseline version, stores it and audits it in one
// transaction, and turns on the deviation rules against it. The syncer
// exports the newest version to the host branch with the batch carrying
// its audit entry.
func (r *runner) promote(ctx context.Context, m *baseline.Model, reason string, now time.Time) (baseline.Version, error) {
	v := r.versions.Promote(m, reason, now)
	all := r.versions.All()
	if len(all) > maxBaselineVersions {
		all = all[len(all)-maxBaselineVersions:]
	}
	counts := m.Len()
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	data, _ := json.Marshal(map[string]any{"version": v.N, "reason": reason, "keys": counts})
	err := r.st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.SetMetaJSON(ctx, MetaBaselines, all); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindBaseline, Subject: fmt.Sprintf("baseline:%d", v.N),
			Message: fmt.Sprintf("baseline version %d promoted (%s): %s keys", v.N, reason, strings.Join(parts, ", ")), Data: data})
		return err
	})
	if err != nil {
		return v, err
	}
	r.model = m
	r.deviations = baseline.NewDeviations(m, baseline.Config{})
	// Rebuild the detectors so the deviation rules join them.
	return v, r.pl.SetPolicy(r.policy)
}
