package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/spf13/pflag"
)

func actionsCmd() *command {
	var asJSON, all bool
	var limit int
	var note string
	return &command{
		name: "actions", summary: "list, roll back or resume the agent's actions", usage: "[--all] [--json] | rollback ID [--note TEXT] | resume",
		long: `Without arguments, lists the actions in force: id, action, target, time left,
incident and what was done. --all lists the whole journal (newest last),
including expired, rolled back, refused and suppressed actions.

  picket actions rollback ID   undo action ID now. The running agent does it
                               within a second; when no agent runs, this
                               command does it itself. Audited.
  picket actions resume        reset a tripped circuit breaker (the agent
                               went observe-only after too many actions in an
                               hour). Audited.

JSON (--json): one object per line: id, incident, kind, target, status,
created, applied, expires, ended, reason, note.`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
			fs.BoolVar(&all, "all", false, "list the whole journal, not only what is in force")
			fs.IntVar(&limit, "limit", 200, "with --all, the newest N entries (0: all)")
			fs.StringVar(&note, "note", "", "rollback: why (goes to the audit trail)")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) == 0 {
				return listActions(ctx, e, all, asJSON, limit)
			}
			switch args[0] {
			case "rollback":
				if len(args) != 2 {
					return usageErr("usage: picket actions rollback ID")
				}
				id, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || id < 1 {
					return usageErr("action id must be a positive number, got %q", args[1])
				}
				return rollbackAction(ctx, e, id, note)
			case "resume":
				if len(args) != 1 {
					return usageErr("unexpected argument %q", args[1])
				}
				st, err := state.Open(ctx, e.g.stateDir)
				if err != nil {
					return err
				}
				defer st.Close()
				// The emergency-stop flag goes first: a running agent
				// that still saw it would trip again right after.
				_, stopped, _ := emergency.ReadStop(e.g.stateDir)
				if err := emergency.ClearStop(e.g.stateDir); err != nil {
					return err
				}
				if stopped {
					fmt.Fprintln(e.stdout, "emergency stop flag removed")
				}
				ok, err := actions.Resume(ctx, st, time.Now(), "operator ("+whoami()+")")
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(e.stdout, "circuit breaker is not tripped: nothing to do")
					return nil
				}
				fmt.Fprintln(e.stdout, "circuit breaker reset: the agent acts again")
				return nil
			}
			return usageErr("unknown actions subcommand %q (rollback, resume)", args[0])
		},
	}
}

// actionRecord is the --json shape of an action (a public contract).
type actionRecord struct {
	ID       int64     `json:"id"`
	Incident int64     `json:"incident"`
	Kind     string    `json:"kind"`
	Target   string    `json:"target"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Applied  time.Time `json:"applied,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	Reason   string    `json:"reason"`
	Note     string    `json:"note,omitempty"`
}

func newActionRecord(a actions.Action) actionRecord {
	return actionRecord{ID: a.ID, Incident: a.Incident, Kind: a.Kind, Target: a.Target, Status: a.Status,
		Created: a.Created, Applied: a.Applied, Expires: a.Expires, Ended: a.Ended, Reason: a.Reason, Note: a.Note}
}

func listActions(ctx context.Context, e *env, all, asJSON bool, limit int) error {
	st, err := state.OpenReadOnly(ctx, e.g.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	var list []actions.Action
	if all {
		list, err = actions.List(ctx, st, limit)
	} else {
		list, err = actions.List(ctx, st, 0, actions.InForceStatuses()...)
	}
	if err != nil {
		return err
	}
	var b actions.Breaker
	st.MetaJSON(ctx, actions.MetaBreaker, &b)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, a := range list {
			if err := enc.Encode(newActionRecord(a)); err != nil {
				return err
			}
		}
		return nil
	}
	if b.Tripped {
		fmt.Fprintf(e.stdout, "CIRCUIT BREAKER TRIPPED at %s (%d actions in an hour, max %d): observe-only until `picket actions resume`\n\n",
			b.At.Local().Format("2006-01-02 15:04"), b.Count, b.Max)
	}
	if len(list) == 0 {
		if all {
			fmt.Fprintln(e.stdout, "no actions recorded")
		} else {
			fmt.Fprintln(e.stdout, "no actions in force")
		}
		return nil
	}
	now := time.Now()
	fmt.Fprintf(e.stdout, "%5s  %-17s %-20s %-18s %-14s %8s  %s\n", "ID", "ACTION", "TARGET", "STATUS", "EXPIRES", "INCIDENT", "WHAT")
	for _, a := range list {
		fmt.Fprintf(e.stdout, "%5d  %-17s %-20s %-18s %-14s %8d  %s\n", a.ID, a.Kind, a.Target, a.Status, expiresIn(a, now), a.Incident, oneLine(a.Note))
	}
	return nil
}

// expiresIn renders when an action ends, relative to now ("in 12m").
func expiresIn(a actions.Action, now time.Time) string {
	switch {
	case !a.Ended.IsZero():
		return a.Ended.Local().Format("Jan 02 15:04")
	case a.Expires.IsZero():
		return "-"
	}
	d := a.Expires.Sub(now).Round(time.Minute)
	if d <= 0 {
		return "due now"
	}
	return "in " + schema.ShortDuration(d)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func whoami() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u + " via sudo"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// rollbackAction asks the running agent to undo id, and does it itself when
// no agent picks the request up.
func rollbackAction(ctx context.Context, e *env, id int64, note string) error {
	st, err := state.Open(ctx, e.g.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	why := "rolled back by operator (" + whoami() + ")"
	if note != "" {
		why += ": " + note
	}
	a, err := actions.RequestRollback(ctx, st, id, why)
	if errors.Is(err, state.ErrNotFound) {
		return &exitError{code: exitUsage, err: fmt.Errorf("no action %d", id)}
	}
	if err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r, err := st.Action(ctx, id)
		if err != nil {
			return err
		}
		if r.Status != actions.StatusRollbackRequested {
			fmt.Fprintf(e.stdout, "action %d (%s %s): %s by the running agent\n", id, a.Kind, a.Target, r.Status)
			return nil
		}
	}
	h, err := localHands(ctx, e, st)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.Engine.Rollback(ctx, id, why); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "action %d (%s %s): rolled back (no agent running)\n", id, a.Kind, a.Target)
	return nil
}

// localHands builds the executors as the agent would, for commands that
// act while it is stopped.
func localHands(ctx context.Context, e *env, st *state.Store) (*agent.Hands, error) {
	boot, err := loadBootstrap(e.g.config)
	if err != nil {
		return nil, err
	}
	h, err := agent.NewHands(agent.HandsConfig{Store: st, StateDir: e.g.stateDir, Remote: boot.Repository.URL,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, err
	}
	h.SetPolicy(storedPolicy(ctx, st))
	return h, nil
}

func emergencyCmd() *command {
	var printScript bool
	return &command{
		name: "emergency-stop", summary: "undo every action picket holds, now", usage: "[--print-script]",
		long: `Undoes everything picket holds on this host: every action in force is rolled
back (firewall blocks, containment, SSH pause, disabled accounts, isolated
containers), picket's nftables table is deleted, /run/nologin is restored,
and the circuit breaker is tripped so a running agent takes no new action
until 'picket actions resume'. Idempotent. Every step is audited.

When the binary or the database is broken, run the standalone script
instead: /usr/local/sbin/picket-emergency-stop (installed by install.sh;
--print-script prints it). It needs only sh, nft, chage and curl or docker.`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&printScript, "print-script", false, "print the standalone emergency-stop script and exit")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			if printScript {
				_, err := e.stdout.Write(emergency.Script)
				return err
			}
			return emergencyStop(ctx, e)
		},
	}
}

func emergencyStop(ctx context.Context, e *env) error {
	var errs []error
	// The stop file first, before the database (which may be what is
	// broken): a running agent sees it within a second and stops acting,
	// so nothing undone below is re-created.
	if err := emergency.WriteStop(e.g.stateDir, time.Now(), whoami()); err != nil {
		errs = append(errs, err)
	}
	st, err := state.Open(ctx, e.g.stateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "picket emergency-stop: state unreadable (%v); running the standalone script\n", err)
		return errors.Join(append(errs, runScript(ctx, e))...)
	}
	defer st.Close()
	now := time.Now()
	// Trip the breaker first: a running agent must not act again meanwhile.
	err = actions.Trip(ctx, st, actions.Breaker{At: now},
		"emergency stop by "+whoami()+": every action rolled back, observe-only until `picket actions resume`")
	if err != nil {
		errs = append(errs, err)
	}
	h, err := localHands(ctx, e, st)
	if err != nil {
		return errors.Join(append(errs, err, runScript(ctx, e))...)
	}
	defer h.Close()
	live, err := actions.List(ctx, st, 0, actions.InForceStatuses()...)
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range live {
		if _, err := h.Engine.Rollback(ctx, a.ID, "emergency stop by "+whoami()); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(e.stdout, "rolled back action %d: %s %s\n", a.ID, a.Kind, a.Target)
	}
	// Whatever the journal did not account for: the script's plain files
	// and the whole table.
	errs = append(errs, runScript(ctx, e))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

// runScript runs the embedded standalone script with this state directory.
func runScript(ctx context.Context, e *env) error {
	dir, err := os.MkdirTemp("", "picket-emergency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "picket-emergency-stop")
	if err := os.WriteFile(path, emergency.Script, 0o700); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", path)
	cmd.Env = append(os.Environ(), "PICKET_STATE_DIR="+e.g.stateDir)
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("emergency-stop script: %w", err)
	}
	return nil
}
