package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/picket-agent/picket/schema"
	"github.com/spf13/pflag"
)

func validateCmd() *command {
	var host string
	var asJSON, bootstrap, printSchema bool
	return &command{
		name: "validate", summary: "check a config repository (what its CI runs)", usage: "[DIR] [--host NAME] [--json] | --bootstrap FILE",
		long: `Validates a config repository checkout (default: the current directory):
picket.cue, whitelists/*.cue and hosts/*.cue against the embedded schema.
With --host only that host's merged view is checked; without it the fleet
policy and every hosts/<name>.cue merged on top of it are checked.

Rejected: unknown fields, wrong types, level thresholds not strictly ordered
(observe < contain < aggressive < lockdown), TTLs not positive or above the
cap, a learning period other than 0 or 24h..72h, invalid IPs or CIDRs.
Each problem is printed as file:line:column: field.path: message.

With --bootstrap FILE, validates a local bootstrap file instead.

JSON (--json): {"valid":bool,"issues":[{"file","line","column","path","message"}]}.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&host, "host", "", "validate only this host's merged configuration")
			fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
			fs.BoolVar(&bootstrap, "bootstrap", false, "treat the argument as a bootstrap file")
			fs.BoolVar(&printSchema, "print-schema", false, "print the embedded CUE schema (with its defaults: the default policy) and exit")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if printSchema {
				_, err := fmt.Fprint(e.stdout, schema.Source())
				return err
			}
			if len(args) > 1 {
				return usageErr("want at most one directory, got %d arguments", len(args))
			}
			target := "."
			if len(args) == 1 {
				target = args[0]
			}
			var err error
			if bootstrap {
				if len(args) != 1 {
					return usageErr("--bootstrap needs the file as argument")
				}
				if _, serr := os.Stat(target); serr != nil {
					return serr
				}
				_, err = schema.LoadBootstrap(target)
			} else {
				fi, serr := os.Stat(target)
				if serr != nil {
					return serr
				}
				if !fi.IsDir() {
					return usageErr("%s is not a directory", target)
				}
				err = schema.ValidateDir(target, host)
			}
			var ve *schema.ValidationError
			if err != nil && !errors.As(err, &ve) {
				return err
			}
			if asJSON {
				out := struct {
					Valid  bool           `json:"valid"`
					Issues []schema.Issue `json:"issues"`
				}{Valid: ve == nil, Issues: []schema.Issue{}}
				if ve != nil {
					out.Issues = ve.Issues
				}
				if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
					return err
				}
				if ve != nil {
					return checkErr(fmt.Errorf("%d problem(s)", len(ve.Issues)))
				}
				return nil
			}
			if ve != nil {
				fmt.Fprintln(e.stdout, ve.Error())
				return checkErr(fmt.Errorf("%s: %d problem(s)", target, len(ve.Issues)))
			}
			fmt.Fprintf(e.stdout, "%s: valid\n", target)
			return nil
		},
	}
}
