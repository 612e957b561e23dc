package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/proposals"
	"github.com/picket-agent/picket/sync/syncer"
	"github.com/spf13/pflag"
)

// statusRecord is the `picket status --json` contract: the agent's
// published status plus what the reader derived.
type statusRecord struct {
	agent.Status
	// Running is true when the recorded process is alive and its heartbeat
	// is recent; State says what the agent itself last wrote.
	Running       bool   `json:"running"`
	HeartbeatAge  string `json:"heartbeat_age"`
	OpenIncidents int    `json:"open_incidents"`
	AuditEntries  int64  `json:"audit_entries"`
	// Sync is present when a config repository is configured.
	Sync *syncer.Status `json:"sync,omitempty"`
	// Actions are the actions in force; Breaker is set when the circuit
	// breaker tripped (observe-only).
	Actions []actionRecord   `json:"actions"`
	Breaker *actions.Breaker `json:"breaker,omitempty"`
	// QueuedPlans counts committed plans the action engine has not taken
	// yet (a burst being worked through); BlockCap is set while the
	// hourly cap of firewall actions holds new blocks back.
	QueuedPlans int               `json:"queued_plans"`
	BlockCap    *actions.BlockCap `json:"block_cap,omitempty"`
	// Suppressions are the local effects of operator verdicts in force;
	// OpenProposals counts whitelist proposals waiting for a merge.
	Suppressions  []suppressionRecord `json:"suppressions"`
	OpenProposals int                 `json:"open_proposals"`
}

type suppressionRecord struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	Rule     string    `json:"rule"`
	Entity   string    `json:"entity,omitempty"`
	Feedback int64     `json:"feedback"`
	Expires  time.Time `json:"expires"`
}

func statusCmd() *command {
	var asJSON bool
	return &command{
		name: "status", summary: "show what the agent is doing", usage: "[--json]",
		long: `One screen: whether the agent runs, its mode, learning progress, the config
in force, sensors (ok, degraded or off, with why) and counters. Reads the
state directory, so it answers while the agent runs and needs no root when
the state directory is readable.

JSON (--json): one object (see README, "JSON output").`,
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print a JSON object") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			st, err := state.OpenReadOnly(ctx, e.g.stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			var rec statusRecord
			ok, err := st.MetaJSON(ctx, agent.MetaStatus, &rec.Status)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no status recorded in %s: the agent has not started with this state directory", e.g.stateDir)
			}
			now := time.Now()
			age := now.Sub(rec.Heartbeat)
			rec.HeartbeatAge = age.Round(time.Second).String()
			rec.Running = rec.State == "running" && alive(rec.PID) && age < 30*time.Second
			open, err := st.Incidents(ctx, state.IncidentFilter{Status: "open"})
			if err != nil {
				return err
			}
			rec.OpenIncidents = len(open)
			if rec.AuditEntries, err = st.AuditCount(ctx); err != nil {
				return err
			}
			var ss syncer.Status
			if ok, err := st.MetaJSON(ctx, syncer.MetaSync, &ss); err == nil && ok {
				ss.Queued = rec.AuditEntries - ss.PushedSeq
				rec.Sync = &ss
			}
			live, err := actions.List(ctx, st, 0, actions.InForceStatuses()...)
			if err != nil {
				return err
			}
			rec.Actions = []actionRecord{}
			for _, a := range live {
				rec.Actions = append(rec.Actions, newActionRecord(a))
			}
			var b actions.Breaker
			if ok, err := st.MetaJSON(ctx, actions.MetaBreaker, &b); err == nil && ok && b.Tripped {
				rec.Breaker = &b
			}
			if rec.QueuedPlans, err = st.CountPendingPlans(ctx); err != nil {
				return err
			}
			var bc actions.BlockCap
			if ok, err := st.MetaJSON(ctx, actions.MetaBlockCap, &bc); err == nil && ok && now.Sub(bc.At) < time.Hour {
				rec.BlockCap = &bc
			}
			sups, err := st.Suppressions(ctx, true)
			if err != nil {
				return err
			}
			rec.Suppressions = []suppressionRecord{}
			for _, s := range sups {
				rec.Suppressions = append(rec.Suppressions, suppressionRecord{ID: s.ID, Kind: s.Kind, Rule: s.Rule, Entity: s.Entity, Feedback: s.Feedback, Expires: s.Expires})
			}
			props, err := st.Proposals(ctx, proposals.StatusQueued, proposals.StatusOpen)
			if err != nil {
				return err
			}
			rec.OpenProposals = len(props)
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(rec)
			}
			run := "stopped"
			if rec.Running {
				run = fmt.Sprintf("running (pid %d, heartbeat %s ago)", rec.PID, rec.HeartbeatAge)
			} else if rec.State == "running" {
				run = fmt.Sprintf("not running (pid %d last seen %s ago; it did not stop cleanly)", rec.PID, rec.HeartbeatAge)
			}
			fmt.Fprintf(e.stdout, "picket %s on %s: %s\n", rec.Version, rec.Hostname, run)
			fmt.Fprintf(e.stdout, "mode:      %s (root: %v)\n", rec.Mode, rec.Root)
			l := rec.Learning
			if l.Active {
				fmt.Fprintf(e.stdout, "learning:  %.0f%% of %s, read-only until %s\n", l.Progress*100, l.Period, l.Ends.UTC().Format(time.RFC3339))
			} else {
				fmt.Fprintf(e.stdout, "learning:  done (%s, ended %s)\n", l.Period, l.Ends.UTC().Format(time.RFC3339))
			}
			cfg := rec.Config.Source
			if rec.Config.Revision != "" {
				cfg += " " + rec.Config.Revision
			}
			if rec.Config.Signer != "" {
				cfg += ", signed by " + rec.Config.Signer
			}
			fmt.Fprintf(e.stdout, "config:    %s (applied %s)\n", cfg, rec.Config.Applied.UTC().Format(time.RFC3339))
			if len(rec.RestartNeeded) > 0 {
				fmt.Fprintf(e.stdout, "restart:   %s (read at start only; the running sensors keep the old settings until `systemctl restart picket`)\n",
					agent.RestartNote(rec.RestartNeeded))
			}
			if s := rec.Store; s != nil {
				what := "STATE NOT WRITABLE"
				if s.Full {
					what = "STATE DIRECTORY FULL"
				}
				fmt.Fprintf(e.stdout, "state:     %s since %s: %s; intake paused, nothing is lost, resumes by itself once a commit works\n",
					what, s.Since.UTC().Format(time.RFC3339), s.Error)
			}
			if s := rec.Sync; s != nil {
				printSync(e, s)
			}
			fmt.Fprintf(e.stdout, "incidents: %d open\n", rec.OpenIncidents)
			if rec.Breaker != nil {
				fmt.Fprintf(e.stdout, "actions:   CIRCUIT BREAKER TRIPPED at %s: observe-only until `picket actions resume`\n", rec.Breaker.At.Local().Format("2006-01-02 15:04"))
			}
			if rec.BlockCap != nil {
				fmt.Fprintf(e.stdout, "actions:   HOURLY BLOCK CAP reached at %s (actions.max_blocks_per_hour = %d): new blocks are suppressed until the hour slides\n",
					rec.BlockCap.At.Local().Format("2006-01-02 15:04"), rec.BlockCap.Max)
			}
			queued := ""
			if rec.QueuedPlans > 0 {
				queued = fmt.Sprintf(", %d plan(s) queued", rec.QueuedPlans)
			}
			fmt.Fprintf(e.stdout, "actions:   %d in force%s\n", len(live), queued)
			// A botnet's blocks are tens of thousands: the screen shows the
			// newest; `picket actions` lists them all.
			const shown = 20
			for _, a := range live[max(0, len(live)-shown):] {
				fmt.Fprintf(e.stdout, "  %5d  %-17s %-20s %-10s incident %d\n", a.ID, a.Kind, a.Target, expiresIn(a, now), a.Incident)
			}
			if len(live) > shown {
				fmt.Fprintf(e.stdout, "  … and %d more (picket actions)\n", len(live)-shown)
			}
			fmt.Fprintf(e.stdout, "feedback:  %d local suppression(s), %d proposal(s) waiting for a merge\n", len(sups), rec.OpenProposals)
			for _, s := range sups {
				fmt.Fprintf(e.stdout, "  %-10s %-28s %-24s until %s (verdict %d)\n", s.Kind, s.Rule, s.Entity, s.Expires.Local().Format("Jan 02 15:04"), s.Feedback)
			}
			fmt.Fprintf(e.stdout, "counters:  %d events, %d signals, %d unparsed lines, %d audit entries\n",
				rec.Counters.Events, rec.Counters.Signals, rec.Counters.Unparsed, rec.AuditEntries)
			fmt.Fprintln(e.stdout, "sensors:")
			for _, s := range rec.Sensors {
				fmt.Fprintf(e.stdout, "  %-12s %-9s %s\n", s.Name, s.State, s.Detail)
			}
			return nil
		},
	}
}

func printSync(e *env, s *syncer.Status) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(e.stdout, "remote:    %s (branch %s)\n", s.Remote, s.Branch)
	if s.AppliedRevision != "" {
		fmt.Fprintf(e.stdout, "applied:   %s signed by %s at %s\n", s.AppliedRevision, s.AppliedSigner, ts(s.AppliedAt))
	}
	fetch := "last fetch " + ts(s.LastFetch)
	if s.LastFetchError != "" {
		fetch += " (error: " + s.LastFetchError + ")"
	}
	push := "last push " + ts(s.LastPush)
	if s.LastPushError != "" {
		push += " (error: " + s.LastPushError + ")"
	}
	fmt.Fprintf(e.stdout, "sync:      %s; %s\n", fetch, push)
	if !s.OfflineSince.IsZero() {
		fmt.Fprintf(e.stdout, "offline:   offline since %s, %d entries queued\n", ts(s.OfflineSince), s.Queued)
	} else {
		fmt.Fprintf(e.stdout, "queue:     %d entries queued for %s\n", s.Queued, s.HostBranch)
	}
	if r := s.LastRejection; r != nil {
		fmt.Fprintf(e.stdout, "rejected:  %s at %s (%s): %s\n", r.Revision, ts(r.At), r.Kind, r.Reason)
	}
}

// alive reports whether pid exists (signal 0). EPERM means it exists but
// belongs to another user (status run by a non-root operator).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
