package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/syncer"
	"github.com/spf13/pflag"
)

// lockRepo takes the state directory's repository lock: the running agent
// and `picket sync --once` must never use the local clone at once (go-git
// is not safe for that). The lock is released when the process exits.
func lockRepo(stateDir string) (*os.File, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "repo.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("the local clone in %s is in use (is the agent running? send it SIGHUP to sync now): %w", stateDir, err)
	}
	return f, nil
}

// runSync is the agent's sync worker.
func runSync(ctx context.Context, boot *schema.Bootstrap, stateDir string, log *slog.Logger, apply syncer.ApplyFunc, note func() string, kick <-chan struct{}) error {
	// A `picket sync --once` may hold the clone for a moment: wait for it
	// rather than giving up on syncing for the agent's whole life.
	var lock *os.File
	for {
		var err error
		if lock, err = lockRepo(stateDir); err == nil {
			break
		}
		log.Warn("waiting for the local clone", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	defer lock.Close()
	st, err := state.Open(ctx, stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := newSyncer(boot, stateDir, st, log, apply, note)
	if err != nil {
		return err
	}
	return s.Run(ctx, kick)
}

func newSyncer(boot *schema.Bootstrap, stateDir string, st *state.Store, log *slog.Logger, apply syncer.ApplyFunc, note func() string) (*syncer.Syncer, error) {
	return syncer.New(syncer.Config{Hostname: boot.Hostname, Bootstrap: *boot, StateDir: stateDir, Store: st, Apply: apply, AppliedNote: note,
		Logger: log, Version: version, StatusJSON: statusJSON(st)})
}

// statusJSON is the host branch's status.json: the agent's published
// status.
func statusJSON(st *state.Store) func() []byte {
	return func() []byte {
		raw, ok, err := st.Meta(context.Background(), agent.MetaStatus)
		if err != nil || !ok {
			return nil
		}
		return []byte(raw + "\n")
	}
}

func syncCmd() *command {
	var once bool
	return &command{
		name: "sync", summary: "run one fetch, verify, validate, apply, push cycle", usage: "--once",
		long: `Runs one sync cycle against the config repository named in the bootstrap
file, without the agent: fetch the config branch, verify every new commit's
signature against trust_dir (mode repository.verify), validate the policy at
the new head, record it as the applied config (the agent starts on it), and
push queued audit entries to hosts/<hostname> as signed commits.

Exits 3 if the remote config was rejected (the reason is printed and
audited; the previous config stays in force), 1 if the remote could not be
reached or the push failed. While the agent runs it owns the local clone:
send it SIGHUP to make it sync at once instead.`,
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&once, "once", false, "run one cycle and exit (required)") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if !once {
				return usageErr("only --once is supported; the agent ('picket run') syncs continuously")
			}
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			boot, err := loadBootstrap(e.g.config)
			if err != nil {
				return checkErr(err)
			}
			stateDir := e.g.stateDir
			if boot.Repository.URL == "" {
				return checkErr(syncer.ErrNoRepository)
			}
			lock, err := lockRepo(stateDir)
			if err != nil {
				return err
			}
			defer lock.Close()
			st, err := state.Open(ctx, stateDir)
			if err != nil {
				return err
			}
			defer st.Close()
			// No agent in this process: the applied config is recorded in
			// state, where the agent reads it at start or on SIGHUP.
			noAgent := func(context.Context, *schema.Policy, string, string) error { return nil }
			s, err := newSyncer(boot, stateDir, st, slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), noAgent, nil)
			if err != nil {
				return err
			}
			rep, err := s.Once(ctx)
			stt := s.Status()
			if stt.AppliedRevision != "" {
				fmt.Fprintf(e.stdout, "config: %s signed by %s\n", stt.AppliedRevision, stt.AppliedSigner)
			}
			if rep.Applied != "" {
				fmt.Fprintf(e.stdout, "applied: %s\n", rep.Applied)
			}
			if rep.Rejected != nil {
				fmt.Fprintf(e.stdout, "rejected: %s (%s): %s\n", rep.Rejected.Revision, rep.Rejected.Kind, rep.Rejected.Reason)
			}
			fmt.Fprintf(e.stdout, "pushed: %d audit entries to %s; %d queued\n", rep.Pushed, stt.HostBranch, stt.Queued)
			if errors.Is(err, syncer.ErrRejected) {
				return checkErr(err)
			}
			return err
		},
	}
}
