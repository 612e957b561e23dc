package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/state"
	"github.com/spf13/pflag"
)

func auditCmd() *command {
	var asJSON bool
	var kind string
	var limit int
	var since int64
	return &command{
		name: "audit", summary: "list audit entries, or verify the hash chain", usage: "[--json] [--kind K] [--since SEQ] [--limit N] | verify",
		long: `Every decision the agent takes is an audit entry, chained by hash to the one
before it. 'picket audit' lists entries (oldest first); 'picket audit verify'
walks the whole chain and exits 3 naming the first entry that was altered,
removed or reordered.

JSON (--json): one object per line: {"seq","time","kind","subject","message","data","prev","hash"}.`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
			fs.StringVar(&kind, "kind", "", "only entries of this kind (incident, plan, agent.start, config.applied, ...)")
			fs.IntVar(&limit, "limit", 0, "print at most N entries")
			fs.Int64Var(&since, "since", 0, "only entries after this sequence number")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			if len(args) > 0 {
				if args[0] != "verify" || len(args) > 1 {
					return usageErr("unknown audit subcommand %q (want: verify)", args[0])
				}
				n, err := st.VerifyAudit(ctx)
				var ce *audit.ChainError
				if errors.As(err, &ce) {
					fmt.Fprintf(e.stdout, "FAIL: %d entries verified before the break\n", n)
					return checkErr(err)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "OK: %d audit entries, chain intact\n", n)
				return nil
			}
			enc := json.NewEncoder(e.stdout)
			return st.EachAudit(ctx, state.AuditFilter{Kind: kind, Since: since, Limit: limit}, func(a audit.Entry) error {
				if asJSON {
					return enc.Encode(a)
				}
				_, err := fmt.Fprintf(e.stdout, "%6d  %s  %-14s %s\n", a.Seq, a.Time.Format("2006-01-02T15:04:05Z07:00"), a.Kind, a.Message)
				return err
			})
		},
	}
}
