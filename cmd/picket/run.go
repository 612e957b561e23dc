package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/picket-agent/picket/actions/account"
	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/state/instance"
	"github.com/picket-agent/picket/sync/syncer"
	"github.com/spf13/pflag"
)

func runCmd() *command {
	var logLevel, mode, learning, hostRoot string
	return &command{
		name: "run", summary: "run the agent (foreground; systemd Type=notify)", usage: "[--state-dir DIR] [--config FILE] [--log-level LEVEL]",
		long: `Runs the agent in the foreground until SIGTERM or SIGINT. Works with no
bootstrap file and no config repository: it then applies the embedded
default policy. Logs are JSON lines on stderr.

Signals: SIGTERM/SIGINT stop gracefully (pending work is committed);
SIGHUP reloads the configuration without restart (an invalid one is
rejected and audited, the running one stays in force).

Under systemd (Type=notify) it sends READY=1 once running and WATCHDOG=1
pings while its main loop and database are healthy.

With repository.url in the bootstrap file it also syncs every
repository.interval: fetch the config branch, verify signatures against
trust_dir, validate, apply without restart; push its audit entries to
hosts/<hostname> as signed commits (queued in state while offline).

Without root it runs degraded: sensors it cannot read are reported off in
'picket status' and 'picket selftest'; it never exits for lack of a
capability.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
			fs.StringVar(&mode, "mode", "", "override the policy's mode for this run: observe or enforce (testing, first days on a host)")
			fs.StringVar(&learning, "learning-period", "", "override the policy's learning period for this run, e.g. 0s or 24h")
			fs.StringVar(&hostRoot, "host-root", "/", "where the host's files are for the users, persistence and file integrity sensors (the agent in a container with / mounted at /host; tests)")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr("--log-level: %v", err)
			}
			log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))
			override, err := policyOverride(mode, learning)
			if err != nil {
				return err
			}
			boot, err := loadBootstrap(e.g.config)
			if err != nil {
				return checkErr(err)
			}
			stateDir := e.g.stateDir
			// One agent per state directory, checked before anything is
			// opened: a second one would re-assert the first one's actions
			// and interleave its journal entries.
			lock, err := instance.Acquire(stateDir)
			if err != nil {
				return err
			}
			defer lock.Release()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						select {
						case reload <- struct{}{}:
						default:
						}
					}
				}
			}()
			var a *agent.Agent
			var workers []func(context.Context) error
			kick := make(chan struct{}, 1)
			if boot.Repository.URL != "" {
				workers = append(workers, func(ctx context.Context) error {
					// The sync calls apply and then note, on its goroutine.
					var restart []string
					apply := func(ctx context.Context, p *schema.Policy, rev, signer string) error {
						var err error
						restart, err = a.ApplyNoting(ctx, override(p), agent.ConfigStatus{Source: "repository", Revision: rev, Signer: signer})
						return err
					}
					return runSync(ctx, boot, stateDir, log, apply, func() string { return agent.RestartNote(restart) }, kick)
				})
			}
			// The agent and the action engine share one connection to
			// the state database: their writes queue in Go, not in
			// SQLite's busy handler, which sleeps up to 100 ms a try.
			hst, err := state.Open(ctx, stateDir)
			if err != nil {
				return err
			}
			defer hst.Close()
			hcfg := agent.HandsConfig{Store: hst, StateDir: stateDir, Remote: boot.Repository.URL, Logger: log}
			if hostRoot != "" && hostRoot != "/" {
				hcfg.Accounts = account.Files{Passwd: filepath.Join(hostRoot, "etc/passwd"), Shadow: filepath.Join(hostRoot, "etc/shadow")}
			}
			hands, err := agent.NewHands(hcfg)
			if err != nil {
				return err
			}
			defer hands.Close()
			workers = append(workers, hands.Run)
			a, err = agent.New(agent.Config{
				Actions:   hands,
				Store:     hst,
				Sensors:   agent.DefaultSensorsAt(log, hostRoot),
				Detectors: agent.DefaultDetectorsAt(hostRoot),
				Progress:  terminal(e.stderr),
				Version:   version,
				Hostname:  boot.Hostname,
				StateDir:  stateDir,
				Logger:    log,
				Notifier:  sdNotifier{},
				Reload:    reload,
				Workers:   workers,
				Policy: func(ctx context.Context) (*schema.Policy, agent.ConfigStatus, error) {
					// SIGHUP also asks the sync for a cycle now.
					select {
					case kick <- struct{}{}:
					default:
					}
					p, cs, err := loadPolicy(boot, stateDir)
					if err != nil {
						return nil, cs, err
					}
					return override(p), cs, nil
				},
			})
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
}

// terminal returns w when it is a terminal (the initial scan's progress
// bar is for people watching, not for the journal), else nil.
func terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return w
}

// policyOverride returns what --mode and --learning-period change in every
// policy the agent applies (so a config from the repository does not undo
// them during the run).
func policyOverride(mode, learning string) (func(*schema.Policy) *schema.Policy, error) {
	var period *schema.Duration
	switch mode {
	case "", "observe", "enforce":
	default:
		return nil, usageErr("--mode must be observe or enforce, got %q", mode)
	}
	if learning != "" {
		d, err := time.ParseDuration(learning)
		if err != nil || d < 0 {
			return nil, usageErr("--learning-period: %q is not a duration like 0s or 24h", learning)
		}
		v := schema.Duration(d)
		period = &v
	}
	return func(p *schema.Policy) *schema.Policy {
		c := *p
		if mode != "" {
			c.Mode = mode
		}
		if period != nil {
			c.Learning.Period = *period
		}
		return &c
	}, nil
}

// loadBootstrap reads the bootstrap file, or returns the defaults when it
// does not exist (the agent must run with nothing in /etc/picket).
func loadBootstrap(path string) (*schema.Bootstrap, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		b := schema.BootstrapDefault()
		return &b, nil
	}
	return schema.LoadBootstrap(path)
}

// loadPolicy returns the policy to run: with a config repository, the last
// one the sync verified and applied (kept in state, so a restart while the
// remote is unreachable keeps it); otherwise, or before the first verified
// config, the embedded default.
func loadPolicy(boot *schema.Bootstrap, stateDir string) (*schema.Policy, agent.ConfigStatus, error) {
	if boot.Repository.URL != "" {
		if st, err := state.OpenReadOnly(context.Background(), stateDir); err == nil {
			var ap syncer.Applied
			ok, err := st.MetaJSON(context.Background(), syncer.MetaApplied, &ap)
			st.Close()
			if ok && err == nil {
				var p schema.Policy
				if err := json.Unmarshal(ap.Policy, &p); err == nil {
					return &p, agent.ConfigStatus{Source: "repository", Revision: ap.Revision, Signer: ap.Signer}, nil
				}
			}
		}
	}
	p, err := schema.Default()
	if err != nil {
		return nil, agent.ConfigStatus{}, fmt.Errorf("embedded default policy: %w", err)
	}
	cs := agent.ConfigStatus{Source: "embedded-default"}
	if boot.Repository.URL != "" {
		cs.Source = "embedded-default (no verified config from the repository yet)"
	}
	return p, cs, nil
}

// sdNotifier talks to systemd through NOTIFY_SOCKET (no-op without it).
type sdNotifier struct{}

func (sdNotifier) Notify(s string) error {
	_, err := daemon.SdNotify(false, s)
	return err
}

func (sdNotifier) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
