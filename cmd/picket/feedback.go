package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/agent/control"
	"github.com/picket-agent/picket/agent/feedback"
	"github.com/picket-agent/picket/state"
)

func feedbackCmd() *command {
	var note, from, to, entity string
	return &command{
		name: "feedback", summary: "tell picket it was right, wrong, too harsh, or missed something",
		usage: "ID|action:N correct|false-positive|too-aggressive [--note TEXT] | missed (--entity KIND:VALUE | --from T [--to T]) [--note TEXT]",
		long: `Records a verdict on an incident (ID) or an action (action:N), audited:

  correct         kept as a labelled example; nothing changes.
  false-positive  the actions are rolled back now; the exact pattern (rule +
                  entity) is suppressed on this host for 7 days; a whitelist
                  proposal (branch proposals/<host>/<id>) is pushed to the
                  config repository. Merging it ends the local suppression.
  too-aggressive  the actions are rolled back now; the incident's rules
                  count half their weight for 24 hours.
  missed          (no id) the entity's recent events in the window become a
                  labelled case, and the baseline keys they cover no longer
                  count as normal.

The running agent applies it at once (over its control socket); when no
agent runs, this command applies it itself, and the agent picks up what
could not be done at its next start.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&note, "note", "", "why (goes to the audit trail and the proposal)")
			fs.StringVar(&entity, "entity", "", "missed: the entity, ip:ADDR or user:NAME or process:PID")
			fs.StringVar(&from, "from", "", "missed: start of the window (RFC 3339 or a duration ago, e.g. 30m)")
			fs.StringVar(&to, "to", "", "missed: end of the window (default now)")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			req := feedback.Request{Note: note, Entity: entity, Who: whoami()}
			switch {
			case len(args) == 1 && args[0] == feedback.Missed:
				req.Verdict = feedback.Missed
			case len(args) == 2:
				req.Verdict = args[1]
				id := args[0]
				if rest, ok := strings.CutPrefix(id, "action:"); ok {
					n, err := strconv.ParseInt(rest, 10, 64)
					if err != nil || n < 1 {
						return usageErr("action id must be action:N, got %q", id)
					}
					req.Action = n
				} else {
					n, err := strconv.ParseInt(id, 10, 64)
					if err != nil || n < 1 {
						return usageErr("incident id must be a positive number, got %q", id)
					}
					req.Incident = n
				}
			default:
				return usageErr("usage: picket feedback ID VERDICT | picket feedback missed --entity KIND:VALUE")
			}
			now := time.Now()
			var err error
			if req.From, err = parseWhen(from, now); err != nil {
				return usageErr("--from: %v", err)
			}
			if req.To, err = parseWhen(to, now); err != nil {
				return usageErr("--to: %v", err)
			}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return giveFeedback(ctx, e, req)
		},
	}
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func giveFeedback(ctx context.Context, e *env, req feedback.Request) error {
	body, _ := json.Marshal(req)
	cctx, cancel := context.WithTimeout(ctx, control.HandlerTimeout+control.ReadTimeout)
	defer cancel()
	resp, err := control.Call(cctx, control.Path(e.g.stateDir), control.Request{Op: agent.OpFeedback, Body: body})
	var res feedback.Result
	switch {
	case err == nil:
		if len(resp.Body) > 0 {
			json.Unmarshal(resp.Body, &res)
		}
		if !resp.OK {
			if res.Feedback != 0 {
				printResult(e, res, "the running agent")
			}
			return fmt.Errorf("feedback: %s", resp.Error)
		}
		printResult(e, res, "the running agent")
		return nil
	case !errors.Is(err, control.ErrNoAgent):
		return err
	}
	// No agent: record and apply here; what needs the agent (its view of
	// recent events) is done as far as the state allows.
	st, err := state.Open(ctx, e.g.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	row, err := feedback.Record(ctx, st, req, time.Now())
	if errors.Is(err, state.ErrNotFound) {
		return &exitError{code: exitUsage, err: err}
	}
	if err != nil {
		return err
	}
	cfg := feedback.Config{Store: st, Hostname: hostnameOf(e)}
	if req.Verdict == feedback.FalsePositive || req.Verdict == feedback.TooAggressive {
		if h, herr := localHands(ctx, e, st); herr == nil {
			defer h.Close()
			cfg.Rollback = func(ctx context.Context, id int64, why string) error {
				_, err := h.Engine.Rollback(ctx, id, why)
				return err
			}
		} else {
			fmt.Fprintf(e.stderr, "picket: cannot build the executors (%v): verdict %d stays pending for the agent's next start\n", herr, row.ID)
			return nil
		}
	}
	res, err = feedback.NewProcessor(cfg).Apply(ctx, row.ID)
	printResult(e, res, "this command (no agent running)")
	return err
}

func hostnameOf(e *env) string {
	if boot, err := loadBootstrap(e.g.config); err == nil && boot.Hostname != "" {
		return boot.Hostname
	}
	return "localhost"
}

func printResult(e *env, r feedback.Result, by string) {
	fmt.Fprintf(e.stdout, "verdict %d (%s): %s by %s\n", r.Feedback, r.Verdict, r.Status, by)
	for _, n := range r.Notes {
		fmt.Fprintf(e.stdout, "  %s\n", n)
	}
}
