package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/picket-agent/picket/agent/replay"
	"github.com/picket-agent/picket/schema"
	"github.com/spf13/pflag"
)

func replayCmd() *command {
	var authFiles, webFiles []string
	var asJSON, stats bool
	var year int
	var repo, host, webFormat, tz string
	return &command{
		name: "replay", summary: "run the detection pipeline over log files", usage: "--auth FILE... [--web FILE...] [--json] [--year YYYY] [--repo DIR [--host NAME]]",
		long: `Runs the same pipeline as the agent (detectors, correlator, responder) over
log files as fast as it can, taking each event's time from its line, and
prints the incidents with level, score, stages, entities, explanation and the
plans the agent would record. Nothing is written and nothing is acted on.
Same input, same flags: byte-identical output.

Syslog lines without a year get one inferred from --year, else from the
file's modification time. Several files are merged by time.

Policy: the embedded default, or --repo DIR (a config repository checkout)
merged for --host.

JSON (--json): one incident object per line (see README, "JSON output");
with --stats a final line {"stats":{...}} counts lines, events and unparsed
lines per file.`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringSliceVar(&authFiles, "auth", nil, "auth log file (syslog format: auth.log, secure, messages); repeatable")
			fs.StringSliceVar(&webFiles, "web", nil, "web access log (combined, common or JSON); repeatable")
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
			fs.BoolVar(&stats, "stats", false, "also print per-file line and event counts")
			fs.IntVar(&year, "year", 0, "year for syslog timestamps without one (default: from the file's mtime)")
			fs.StringVar(&tz, "tz", "Local", "time zone of syslog timestamps without one (e.g. UTC, Europe/Paris)")
			fs.StringVar(&repo, "repo", "", "config repository directory to take the policy from")
			fs.StringVar(&host, "host", "", "host whose overrides apply (with --repo)")
			fs.StringVar(&webFormat, "web-format", "auto", "web log format: auto, combined, common, json")
		},
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q (files go after --auth or --web)", args[0])
			}
			if len(authFiles)+len(webFiles) == 0 {
				return usageErr("nothing to replay: give --auth FILE and/or --web FILE")
			}
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return usageErr("--tz: %v", err)
			}
			var pol *schema.Policy
			if repo != "" {
				pol, err = schema.LoadDir(repo, host)
			} else {
				pol, err = schema.Default()
			}
			if err != nil {
				return checkErr(err)
			}
			var inputs []replay.Input
			for _, f := range authFiles {
				inputs = append(inputs, replay.Input{Path: f, Kind: replay.Auth})
			}
			for _, f := range webFiles {
				inputs = append(inputs, replay.Input{Path: f, Kind: replay.Web})
			}
			res, err := replay.Run(ctx, inputs, replay.Options{Policy: pol, Year: year, Location: loc, WebFormat: webFormat})
			if err != nil {
				return err
			}
			return printReplay(e.stdout, res, pol, asJSON, stats)
		},
	}
}

func printReplay(w io.Writer, res *replay.Result, pol *schema.Policy, asJSON, stats bool) error {
	enc := json.NewEncoder(w)
	for _, in := range res.Incidents {
		rec := newIncidentRecord(in, pol, res.Plans[in.ID])
		if asJSON {
			if err := enc.Encode(rec); err != nil {
				return err
			}
			continue
		}
		if _, err := io.WriteString(w, rec.Explanation+"\n"); err != nil {
			return err
		}
	}
	if stats {
		if asJSON {
			return enc.Encode(map[string]any{"stats": map[string]any{"lines": res.Lines, "events": res.Events,
				"unparsed": res.Unparsed, "signals": res.Signals, "incidents": len(res.Incidents), "files": res.PerFile}})
		}
		for _, f := range res.PerFile {
			fmt.Fprintf(w, "%s (%s): %d lines, %d events, %d unparsed\n", f.Path, f.Kind, f.Lines, f.Events, f.Unparsed)
		}
		fmt.Fprintf(w, "total: %d lines, %d events, %d unparsed, %d signals, %d incidents\n", res.Lines, res.Events, res.Unparsed, res.Signals, len(res.Incidents))
	} else if !asJSON && len(res.Incidents) == 0 {
		fmt.Fprintf(w, "no incidents (%d lines, %d events)\n", res.Lines, res.Events)
	}
	return nil
}
