// Command picket is the picket security agent and its operator CLI: one
// binary whose subcommands run the agent (run), check a config repository
// (validate), replay logs through the detection pipeline (replay), and read
// what the agent recorded (status, incidents, explain, audit). Flags are
// parsed with pflag; each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/sync/remote"
	"github.com/spf13/pflag"
)

// Exit codes, documented in --help. They are a contract for scripts and CI.
const (
	exitOK      = 0 // success
	exitFailure = 1 // operational error: state unreadable, I/O, agent failed
	exitUsage   = 2 // bad command line
	exitCheck   = 3 // a check found a problem: invalid config, broken audit chain, missing capability
)

const exitCodesHelp = `Exit codes:
  0  success
  1  operational error (state unreadable, I/O error, agent failure)
  2  usage error (unknown command or flag, bad argument)
  3  check failed (invalid config, broken audit chain, selftest found a missing capability)`

// globals are the flags every subcommand accepts.
type globals struct {
	config   string
	stateDir string
}

// env is what a subcommand gets: its streams and the global flags.
type env struct {
	stdout, stderr io.Writer
	g              *globals
}

type command struct {
	name    string
	summary string
	usage   string // after "picket NAME"
	long    string
	flags   func(fs *pflag.FlagSet) // adds the command's own flags
	run     func(ctx context.Context, e *env, fs *pflag.FlagSet, args []string) error
	// sub lists subcommands (audit verify); dispatched by the command itself.
}

// exitError carries an exit code through the error chain.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func checkErr(err error) error { return &exitError{code: exitCheck, err: err} }

func commands() []*command {
	cmds := []*command{
		runCmd(), validateCmd(), replayCmd(), statusCmd(), incidentsCmd(),
		explainCmd(), actionsCmd(), feedbackCmd(), proposalsCmd(), emergencyCmd(), auditCmd(), baselineCmd(), syncCmd(), hostkeyCmd(), selftestCmd(), versionCmd(),
	}
	return cmds
}

func addGlobals(fs *pflag.FlagSet, g *globals) {
	fs.StringVar(&g.config, "config", "/etc/picket/picket.cue", "local bootstrap file (optional: built-in defaults apply when it does not exist)")
	fs.StringVar(&g.stateDir, "state-dir", "/var/lib/picket", "state directory (SQLite database, local clone); default: the bootstrap file's state_dir, else /var/lib/picket")
}

func main() {
	// go-git's transport registry is process-global and unlocked: install
	// the retrying HTTP transport once, before any goroutine uses git.
	remote.InstallHTTP(nil)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain parses the command line and runs one subcommand; tests call it
// in-process.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{}
	top := pflag.NewFlagSet("picket", pflag.ContinueOnError)
	top.SetInterspersed(false)
	top.SetOutput(io.Discard)
	addGlobals(top, g)
	help := top.BoolP("help", "h", false, "show help")
	if err := top.Parse(args); err != nil {
		fmt.Fprintf(stderr, "picket: %v\n\n", err)
		topUsage(stderr, top)
		return exitUsage
	}
	rest := top.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		if len(rest) > 1 && rest[0] == "help" {
			rest = []string{rest[1], "--help"}
		} else {
			w := stdout
			code := exitOK
			if !*help && len(rest) == 0 {
				w, code = stderr, exitUsage
			}
			topUsage(w, top)
			return code
		}
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == rest[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "picket: unknown command %q\n\n", rest[0])
		topUsage(stderr, top)
		return exitUsage
	}
	fs := pflag.NewFlagSet("picket "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// Globals are accepted after the command name too, bound to the same
	// variables, with the values already given as defaults.
	gl := *g
	addGlobals(fs, g)
	g.config, g.stateDir = gl.config, gl.stateDir
	if f := fs.Lookup("config"); f != nil {
		f.DefValue = "/etc/picket/picket.cue"
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	chelp := fs.BoolP("help", "h", false, "show help for this command")
	if err := fs.Parse(rest[1:]); err != nil {
		fmt.Fprintf(stderr, "picket %s: %v\n\n", cmd.name, err)
		cmdUsage(stderr, cmd, fs)
		return exitUsage
	}
	if *chelp {
		cmdUsage(stdout, cmd, fs)
		return exitOK
	}
	// The state directory: --state-dir if given, else the bootstrap file's
	// state_dir, else the default; every command agrees on it.
	if !fs.Changed("state-dir") && !top.Changed("state-dir") {
		if _, err := os.Stat(g.config); err == nil {
			if b, err := schema.LoadBootstrap(g.config); err == nil && b.StateDir != "" {
				g.stateDir = b.StateDir
			}
		}
	}
	e := &env{stdout: stdout, stderr: stderr, g: g}
	err := cmd.run(ctx, e, fs, fs.Args())
	if err == nil {
		return exitOK
	}
	var xe *exitError
	code := exitFailure
	if errors.As(err, &xe) {
		code = xe.code
	}
	fmt.Fprintf(stderr, "picket %s: %v\n", cmd.name, err)
	if code == exitUsage {
		fmt.Fprintf(stderr, "run 'picket %s --help' for usage\n", cmd.name)
	}
	return code
}

func topUsage(w io.Writer, top *pflag.FlagSet) {
	fmt.Fprintf(w, `picket — autonomous security agent for Linux servers.

It learns what is normal on this host, detects attacks with deterministic
rules, and takes safe, time-bound, reversible actions with a full audit trail.

Usage:
  picket [global flags] COMMAND [flags] [args]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags (accepted before or after COMMAND):\n%s\n%s\n\nRun 'picket COMMAND --help' for a command's flags.\n",
		strings.TrimRight(top.FlagUsages(), "\n"), exitCodesHelp)
}

func cmdUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "picket %s — %s\n\nUsage:\n  picket %s %s\n", c.name, c.summary, c.name, c.usage)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
	}
	fmt.Fprintf(w, "\nFlags:\n%s\n%s\n", strings.TrimRight(fs.FlagUsages(), "\n"), exitCodesHelp)
}
