package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/proposals"
)

func proposalsCmd() *command {
	var asJSON bool
	return &command{
		name: "proposals", summary: "list whitelist proposals (open, merged, expired)", usage: "[--json]",
		long: `Lists the whitelist proposals this host made from false-positive verdicts:
queued (waiting for the remote), open (branch pushed, waiting for a merge),
merged (a signed main carries it; the local suppression ended) and expired
(not merged before its local suppression ran out).

JSON (--json): one object per line: id, status, pattern, branch, commit,
file, feedback, created, updated, expires, note.`,
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON lines") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			ps, err := proposals.List(ctx, st)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				for _, p := range ps {
					enc.Encode(proposalRecord{ID: p.ID, Status: p.Status, Pattern: p.Pattern, Branch: p.Branch, Commit: p.Commit,
						File: p.Doc.File, Feedback: p.Feedback, Created: p.Created, Updated: p.Updated, Expires: p.Expires, Note: p.Note})
				}
				return nil
			}
			if len(ps) == 0 {
				fmt.Fprintln(e.stdout, "no proposals")
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tWHITELISTS\tBRANCH\tSUPPRESSION\tNOTE")
			for _, p := range ps {
				left := "-"
				if p.Status == proposals.StatusQueued || p.Status == proposals.StatusOpen {
					left = "ends " + p.Expires.Local().Format("2006-01-02 15:04") + " (in " + p.Expires.Sub(now).Round(time.Minute).String() + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Status, p.Pattern, p.Branch, left, p.Note)
			}
			return tw.Flush()
		},
	}
}

// proposalRecord is the --json shape of a proposal (a public contract).
type proposalRecord struct {
	ID       int64     `json:"id"`
	Status   string    `json:"status"`
	Pattern  string    `json:"pattern"`
	Branch   string    `json:"branch"`
	Commit   string    `json:"commit,omitempty"`
	File     string    `json:"file,omitempty"`
	Feedback int64     `json:"feedback"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Expires  time.Time `json:"expires"`
	Note     string    `json:"note,omitempty"`
}
