package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/schema"
	"github.com/spf13/pflag"
)

func runCmd() *command {
	var logLevel string
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

Without root it runs degraded: sensors it cannot read are reported off in
'picket status' and 'picket selftest'; it never exits for lack of a
capability.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
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
			boot, err := loadBootstrap(e.g.config)
			if err != nil {
				return checkErr(err)
			}
			stateDir := e.g.stateDir
			if !fs.Changed("state-dir") && boot.StateDir != "" {
				stateDir = boot.StateDir
			}
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
			a, err := agent.New(agent.Config{
				Version:  version,
				Hostname: boot.Hostname,
				StateDir: stateDir,
				Logger:   log,
				Notifier: sdNotifier{},
				Reload:   reload,
				Policy: func(ctx context.Context) (*schema.Policy, agent.ConfigStatus, error) {
					return loadPolicy(e.g.config, log)
				},
			})
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
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

// loadPolicy returns the policy to run. Until the git sync lands (config
// repository), this is the embedded default; a configured repository is
// reported so the operator is not misled.
func loadPolicy(bootPath string, log *slog.Logger) (*schema.Policy, agent.ConfigStatus, error) {
	boot, err := loadBootstrap(bootPath)
	if err != nil {
		return nil, agent.ConfigStatus{}, err
	}
	p, err := schema.Default()
	if err != nil {
		return nil, agent.ConfigStatus{}, fmt.Errorf("embedded default policy: %w", err)
	}
	if boot.Repository.URL != "" {
		log.Warn("config repository sync is not available in this version; running the embedded default policy", "repository", boot.Repository.URL)
	}
	return p, agent.ConfigStatus{Source: "embedded-default"}, nil
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
