package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/audit/explain"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/spf13/pflag"
)

func incidentsCmd() *command {
	var asJSON, all bool
	var limit int
	return &command{
		name: "incidents", summary: "list incidents the agent recorded", usage: "[--all] [--limit N] [--json]",
		long: `Lists incidents, newest first: id, status, level, score, kill-chain stages and
entities. Without --all only incidents that are not closed are listed. Reads
the state database, so it works while the agent runs and needs no root if the
state directory is readable.

JSON (--json): one incident object per line, the same shape as
'picket explain --json' and 'picket replay --json' (see README, "JSON output").`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
			fs.BoolVar(&all, "all", false, "include closed incidents")
			fs.IntVar(&limit, "limit", 100, "print at most N incidents (0: all)")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			f := state.IncidentFilter{Status: "open", Limit: limit}
			if all {
				f.Status = ""
			}
			rows, err := st.Incidents(ctx, f)
			if err != nil {
				return err
			}
			pol := storedPolicy(ctx, st)
			enc := json.NewEncoder(e.stdout)
			if !asJSON && len(rows) == 0 {
				fmt.Fprintln(e.stdout, "no incidents")
				return nil
			}
			for _, r := range rows {
				in, err := decodeIncident(r)
				if err != nil {
					fmt.Fprintf(e.stderr, "picket incidents: %v (skipped)\n", err)
					continue
				}
				if asJSON {
					plans, err := loadPlans(ctx, st, in.ID)
					if err != nil {
						return err
					}
					if err := enc.Encode(newIncidentRecord(in, pol, plans)); err != nil {
						return err
					}
					continue
				}
				ents := make([]string, len(in.Entities))
				for i, en := range in.Entities {
					ents[i] = en.String()
				}
				fmt.Fprintf(e.stdout, "%5d  %-9s %-10s score %-5g last %s  stages %s  %s\n", in.ID, in.Status, in.Level, in.Score,
					in.Updated.UTC().Format(time.RFC3339), explain.Stages(in.Stages), strings.Join(ents, " "))
			}
			return nil
		},
	}
}

func decodeIncident(r state.IncidentRow) (*correlate.Incident, error) {
	var in correlate.Incident
	if err := json.Unmarshal(r.Doc, &in); err != nil {
		return nil, fmt.Errorf("incident %d: unreadable document: %w", r.ID, err)
	}
	// The row's status is authoritative (closing updates the row).
	in.Status = correlate.Status(r.Status)
	return &in, nil
}

func loadPlans(ctx context.Context, st *state.Store, id int64) ([]respond.Plan, error) {
	rows, err := st.Plans(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]respond.Plan, 0, len(rows))
	for _, r := range rows {
		var lvl correlate.Level
		lvl.UnmarshalText([]byte(r.Level))
		out = append(out, respond.Plan{Incident: r.Incident, Time: r.Time, Action: r.Action, Target: r.Target,
			TTL: schema.Duration(r.TTL), Level: lvl, Status: r.Status, Reason: r.Reason})
	}
	return out, nil
}

// storedPolicy is the policy the agent last applied (for thresholds in
// explanations); the embedded default when the agent never stored one.
func storedPolicy(ctx context.Context, st *state.Store) *schema.Policy {
	var p schema.Policy
	if ok, err := st.MetaJSON(ctx, agent.MetaPolicy, &p); ok && err == nil {
		return &p
	}
	d, err := schema.Default()
	if err != nil {
		return &schema.Policy{}
	}
	return d
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, usageErr("incident id must be a positive number, got %q", s)
	}
	return id, nil
}
