package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/state"
	"github.com/spf13/pflag"
)

func baselineCmd() *command {
	var asJSON bool
	var version int
	return &command{
		name: "baseline", summary: "show the learned baseline and its versions", usage: "status | show [KIND] [--version N] | diff A B  [--json]",
		long: `The agent learns what is normal during its learning period (processes per
parent, outbound destinations per executable, listeners, logins) and
promotes it to baseline version 1 at the end; after that, what the baseline
never saw is a deviation signal. Every version is audited and written to the
host branch as baseline/<kind>.json, so 'git log -p baseline/' shows what
changed.

  status           learning progress and the stored versions
  show [KIND]      the latest (or --version N) baseline, all kinds or one of:
                   process, outbound, listener, auth
  diff A B         what changed from version A to version B

JSON (--json): status prints {"learning":{...},"versions":[{"n","at","reason","keys"}]};
show prints the kinds' documents; diff prints one {"kind","op","key"} per line.`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.IntVar(&version, "version", 0, "with show: this version instead of the latest")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) == 0 {
				return usageErr("want a subcommand: status, show or diff")
			}
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			vs, err := agent.LoadBaselines(ctx, st)
			if err != nil {
				return err
			}
			switch args[0] {
			case "status":
				return baselineStatus(ctx, e, st, vs, asJSON)
			case "show":
				if len(args) > 2 {
					return usageErr("show takes at most one kind")
				}
				v, ok := vs.Latest()
				if version != 0 {
					v, ok = vs.Get(version)
				}
				if !ok {
					return fmt.Errorf("no baseline version %s yet (the learning period promotes version 1)", versionName(version))
				}
				kinds := baseline.AllKinds()
				if len(args) == 2 {
					if _, ok := v.Kinds[args[1]]; !ok {
						return usageErr("unknown kind %q (want one of %v)", args[1], kinds)
					}
					kinds = []string{args[1]}
				}
				if asJSON {
					out := map[string]json.RawMessage{}
					for _, k := range kinds {
						out[k] = v.Kinds[k]
					}
					return json.NewEncoder(e.stdout).Encode(out)
				}
				fmt.Fprintf(e.stdout, "baseline version %d (%s, %s)\n", v.N, v.At.UTC().Format(time.RFC3339), v.Reason)
				for _, k := range kinds {
					fmt.Fprintf(e.stdout, "== %s\n%s", k, v.Kinds[k])
				}
				return nil
			case "diff":
				if len(args) != 3 {
					return usageErr("diff takes two version numbers")
				}
				a, errA := strconv.Atoi(args[1])
				b, errB := strconv.Atoi(args[2])
				if errA != nil || errB != nil {
					return usageErr("diff takes two version numbers, got %q %q", args[1], args[2])
				}
				va, okA := vs.Get(a)
				vb, okB := vs.Get(b)
				if !okA || !okB {
					return fmt.Errorf("unknown baseline version (have %d)", len(vs.All()))
				}
				changes, err := baseline.Diff(va, vb)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(e.stdout)
				for _, c := range changes {
					if asJSON {
						if err := enc.Encode(c); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintln(e.stdout, c.String())
				}
				if !asJSON && len(changes) == 0 {
					fmt.Fprintf(e.stdout, "versions %d and %d are the same\n", a, b)
				}
				return nil
			}
			return usageErr("unknown baseline subcommand %q (want status, show or diff)", args[0])
		},
	}
}

func versionName(n int) string {
	if n == 0 {
		return "at all"
	}
	return strconv.Itoa(n)
}

type baselineVersionRecord struct {
	N      int            `json:"n"`
	At     time.Time      `json:"at"`
	Reason string         `json:"reason"`
	Keys   map[string]int `json:"keys"`
}

func baselineStatus(ctx context.Context, e *env, st *state.Store, vs *baseline.Versions, asJSON bool) error {
	var status agent.Status
	st.MetaJSON(ctx, agent.MetaStatus, &status)
	var recs []baselineVersionRecord
	for _, v := range vs.All() {
		r := baselineVersionRecord{N: v.N, At: v.At.UTC(), Reason: v.Reason, Keys: map[string]int{}}
		if m, err := v.Model(baseline.DefaultCaps()); err == nil {
			r.Keys = m.Len()
		}
		recs = append(recs, r)
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]any{"learning": status.Learning, "versions": nonNil(recs)})
	}
	l := status.Learning
	if l.Active {
		fmt.Fprintf(e.stdout, "learning: %.0f%% of %s, until %s\n", l.Progress*100, l.Period, l.Ends.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(e.stdout, "learning: done (%s)\n", l.Period)
	}
	if len(recs) == 0 {
		fmt.Fprintln(e.stdout, "no baseline version yet: deviation rules are off until the learning period promotes version 1")
		return nil
	}
	for _, r := range recs {
		kinds := make([]string, 0, len(r.Keys))
		for k := range r.Keys {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintf(e.stdout, "version %d  %s  %s:", r.N, r.At.Format(time.RFC3339), r.Reason)
		for _, k := range kinds {
			fmt.Fprintf(e.stdout, " %s %d", k, r.Keys[k])
		}
		fmt.Fprintln(e.stdout)
	}
	return nil
}
