package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	var period time.Duration
	return &command{
		name: "baseline", summary: "show the learned baseline and its versions; relearn it", usage: "status | show [KIND] [--version N] | diff A B | relearn [--period D]  [--json]",
		long: `The agent learns what is normal during its learning period (processes per
parent, outbound destinations per executable, listeners, logins, web
request rates, persistence entries, file hashes) and promotes it to baseline
version 1 at the end; after that, what the baseline never saw is a
deviation signal. Every version is audited and written to the
host branch as baseline/<kind>.json, so 'git log -p baseline/' shows what
changed.

  status           learning progress and the stored versions
  show [KIND]      the latest (or --version N) baseline, all kinds or one of:
                   process, outbound, listener, auth, web, persistence, files
  diff A B         what changed from version A to version B
  relearn          learn a new baseline from scratch for --period (default:
                   the policy's learning period, at most 72h) and promote it
                   as the next version. Works whether the agent runs (it
                   starts within a few seconds) or not (it starts at the
                   next start). Unlike the first learning period the agent
                   stays active: the deviation rules keep comparing against
                   the current version until the new one is promoted.

JSON (--json): status prints {"learning":{...},"versions":[{"n","at","reason","keys"}]};
show prints the kinds' documents; diff prints one {"kind","op","key"} per line.`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.IntVar(&version, "version", 0, "with show: this version instead of the latest")
			fs.DurationVar(&period, "period", 0, "with relearn: how long to learn (default: the policy's learning period)")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) == 0 {
				return usageErr("want a subcommand: status, show, diff or relearn")
			}
			if args[0] == "relearn" {
				return baselineRelearn(ctx, e, period, len(args), asJSON)
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
			return usageErr("unknown baseline subcommand %q (want status, show, diff or relearn)", args[0])
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
	req, rs, err := agent.LoadRelearn(ctx, st)
	if err != nil {
		return err
	}
	relearn := relearnRecord(req, rs, status)
	if asJSON {
		out := map[string]any{"learning": status.Learning, "versions": nonNil(recs)}
		if relearn != nil {
			out["relearn"] = relearn
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	l := status.Learning
	if l.Active {
		fmt.Fprintf(e.stdout, "learning: %.0f%% of %s, until %s\n", l.Progress*100, l.Period, l.Ends.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(e.stdout, "learning: done (%s)\n", l.Period)
	}
	if relearn != nil {
		fmt.Fprintf(e.stdout, "relearn: %s\n", relearn.Text)
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

// relearnView is the relearn part of `baseline status`.
type relearnView struct {
	State     string    `json:"state"` // requested | running | done | refused
	Requested time.Time `json:"requested"`
	agent.RelearnStatus
	Text string `json:"-"`
}

func relearnRecord(req agent.RelearnRequest, rs agent.RelearnStatus, status agent.Status) *relearnView {
	if req.ID == 0 {
		return nil
	}
	v := &relearnView{Requested: req.At, RelearnStatus: rs}
	at := req.At.UTC().Format(time.RFC3339)
	switch {
	case req.ID > rs.Request:
		v.State = "requested"
		v.Text = fmt.Sprintf("requested at %s, not started yet (the agent starts it within a few seconds, or at its next start)", at)
	case rs.Active:
		v.State = "running"
		// Progress as of the agent's last save; recomputed from the clock
		// when the agent runs.
		if status.State == "running" {
			now := time.Now()
			if rs.Ends.After(rs.Started) {
				v.Progress = min(1, max(0, float64(now.Sub(rs.Started))/float64(rs.Ends.Sub(rs.Started))))
			}
		}
		v.Text = fmt.Sprintf("%.0f%% of %s, until %s (requested at %s); the deviation rules compare against the current version meanwhile",
			v.Progress*100, rs.Period, rs.Ends.UTC().Format(time.RFC3339), at)
	case rs.Promoted > 0:
		v.State = "done"
		v.Text = fmt.Sprintf("done: requested at %s, promoted version %d", at, rs.Promoted)
	default:
		v.State = "refused"
		v.Text = fmt.Sprintf("requested at %s: %s", at, rs.Note)
	}
	return v
}

func baselineRelearn(ctx context.Context, e *env, period time.Duration, nargs int, asJSON bool) error {
	if nargs != 1 {
		return usageErr("relearn takes no arguments (use --period)")
	}
	if period < 0 || period > agent.MaxRelearnPeriod {
		return usageErr("--period must be between 0 (the policy's learning period) and %s, got %s", agent.MaxRelearnPeriod, period)
	}
	// Never create a state directory the agent has not: a typo in
	// --state-dir must not leave a request nobody will read.
	if _, err := os.Stat(filepath.Join(e.g.stateDir, "picket.db")); err != nil {
		return fmt.Errorf("baseline relearn: no agent state in %s: %w", e.g.stateDir, err)
	}
	st, err := state.Open(ctx, e.g.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	by := "picket baseline relearn"
	if u := os.Getenv("SUDO_USER"); u != "" {
		by += " (sudo by " + u + ")"
	}
	req, err := agent.RequestRelearn(ctx, st, period, by, time.Now())
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(req)
	}
	what := "the policy's learning period"
	if period > 0 {
		what = period.String()
	}
	fmt.Fprintf(e.stdout, "relearn requested for %s: a running agent starts it within a few seconds, a stopped one at its next start; 'picket baseline status' shows its progress\n", what)
	return nil
}
