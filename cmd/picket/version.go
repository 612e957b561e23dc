package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type versionRecord struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Commit  string `json:"commit,omitempty"`
}

func versionCmd() *command {
	var asJSON bool
	return &command{
		name: "version", summary: "print the version", usage: "[--json]",
		flags: func(fs *pflag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print a JSON object") },
		run: func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			r := versionRecord{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						r.Commit = s.Value
					}
				}
			}
			if asJSON {
				return json.NewEncoder(e.stdout).Encode(r)
			}
			fmt.Fprintf(e.stdout, "picket %s (%s %s/%s)\n", r.Version, r.Go, r.OS, r.Arch)
			return nil
		},
	}
}
