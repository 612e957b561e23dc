package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/picket-agent/picket/state"
	"github.com/spf13/pflag"
)

func explainCmd() *command {
	var asJSON bool
	return &command{
		name: "explain", summary: "tell the story of one incident", usage: "INCIDENT [--json]",
		long: `Prints the incident's signals in time order (stage, rule, weight, reason and
evidence lines), the score arithmetic, the level it maps to with the
thresholds in force, and the action plans. Deterministic: no LLM involved.`,
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print the incident as one JSON object") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageErr("want exactly one incident id")
			}
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			row, err := st.Incident(ctx, id)
			if err != nil {
				return err
			}
			in, err := decodeIncident(row)
			if err != nil {
				return err
			}
			plans, err := loadPlans(ctx, st, id)
			if err != nil {
				return err
			}
			rec := newIncidentRecord(in, storedPolicy(ctx, st), plans)
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(rec)
			}
			_, err = io.WriteString(e.stdout, rec.Explanation)
			return err
		},
	}
}
