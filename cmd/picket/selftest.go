package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/picket-agent/picket/agent/selftest"
	"github.com/spf13/pflag"
)

func selftestCmd() *command {
	var asJSON bool
	return &command{
		name: "selftest", summary: "print what this host lets the agent do", usage: "[--json]",
		long: `Probes root, capabilities, /proc, the state directory, journald, the auth and
web log files and systemd notification, and prints one line per capability:
ok, degraded (the agent runs without it, with less coverage) or missing
(something the agent needs). Exits 3 when anything is missing.

JSON (--json): one object per line: {"name","state","reason"}.`,
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON lines") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			boot, err := loadBootstrap(e.g.config)
			if err != nil {
				return checkErr(err)
			}
			stateDir := e.g.stateDir
			pol, _, err := loadPolicy(boot, stateDir)
			if err != nil {
				return checkErr(err)
			}
			res := selftest.Run(ctx, selftest.Options{StateDir: stateDir, AuthFiles: pol.Sensors.Auth.Files, WebFiles: pol.Sensors.Web.Files})
			missing := 0
			enc := json.NewEncoder(e.stdout)
			if !asJSON {
				fmt.Fprintf(e.stdout, "%-22s %-9s %s\n", "CAPABILITY", "STATE", "REASON")
			}
			for _, r := range res {
				if r.State == selftest.Missing {
					missing++
				}
				if asJSON {
					if err := enc.Encode(r); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(e.stdout, "%-22s %-9s %s\n", r.Name, r.State, r.Reason)
			}
			if missing > 0 {
				return checkErr(fmt.Errorf("%d capability(ies) missing", missing))
			}
			return nil
		},
	}
}
