package procname

import (
	"path"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/schema"
)

// MemfdPrefix begins the executable path of a program run from a memfd
// (memfd_create + execveat): "/memfd:<name>", with " (deleted)" stripped.
const MemfdPrefix = "/memfd:"

// Session recognises the ordinary session at the top of a process tree:
// init, service and session managers, sshd, logins, terminals,
// multiplexers, cron, container shims (Names), and the interactive shells
// running directly below them. Two processes that share only session
// ancestors are unrelated: an admin's tmux running two test suites is two
// stories, not one.
type Session struct {
	Names  Names
	Shells Names
	// TempDirs: a "session" process whose executable lies here, or in a
	// memfd, is an impostor (an implant named sshd) and ends the session.
	TempDirs []string
}

// NewSession builds the session matcher of a policy.
func NewSession(p *schema.Processes) Session {
	return Session{Names: p.Sessions, Shells: p.Shells, TempDirs: p.TempDirs}
}

// Depth returns how many ancestors, parent first, lie outside the session:
// lineage[:Depth] is the process's own tree, lineage[Depth:] the session
// above it. The session is a contiguous run from the top of the lineage:
// PID 1, then processes named in Names, then interactive shells whose
// parent belongs to it. So a tmux or a "bash -i" an attacker starts below
// a web server is part of the attack, not a session, and a lineage whose
// top is unknown (not PID 1, not a session process) has no session.
func (s Session) Depth(lineage []event.Ancestor) int {
	i := len(lineage)
	for i > 0 && s.member(lineage[i-1], i < len(lineage)) {
		i--
	}
	return i
}

// Parent returns the parent pid a finding about p correlates on, so that a
// chain of suspicious children of one process forms one incident: the
// parent, unless it belongs to the session (siblings under one tmux or
// login shell are unrelated). With no lineage known it is p.PPID when
// above 1: guessing that to be a session would split an attack. Every
// detector keying process findings should use it, so the scope is one rule.
func (s Session) Parent(p *event.Process) (int, bool) {
	switch {
	case len(p.Lineage) > 0:
		return p.Lineage[0].PID, s.Depth(p.Lineage) > 0
	case p.PPID > 1:
		return p.PPID, true
	}
	return 0, false
}

func (s Session) member(a event.Ancestor, under bool) bool {
	if a.PID == 1 {
		return true
	}
	if strings.HasPrefix(a.Exe, MemfdPrefix) || InDir(a.Exe, s.TempDirs) != "" {
		return false
	}
	if s.Names.Match(a.Comm, a.Exe) {
		return true
	}
	return under && s.Shells.Match(a.Comm, a.Exe) && Interactive(a.Args)
}

// Interactive reports whether a shell's argv starts an interactive shell:
// options only ("-bash", "zsh", "bash -l", "sh -i"), no -c command, no -s
// (commands from stdin: curl … | sh -s) and no script operand. An unknown
// argv (not read) is not interactive: a session is never guessed.
func Interactive(args []string) bool {
	if len(args) == 0 {
		return false
	}
	rest := args[1:]
	if path.Base(args[0]) == "busybox" {
		// "busybox sh": the applet name comes first (run through a
		// symlink, argv[0] is the applet).
		if len(rest) == 0 {
			return false
		}
		rest = rest[1:]
	}
	for _, a := range rest {
		switch {
		case a == "--" || a == "-" || a == "":
			return false
		case strings.HasPrefix(a, "--"):
			// Long options (--login, --norc) change no input.
		case strings.HasPrefix(a, "-") || strings.HasPrefix(a, "+"):
			if strings.ContainsAny(a[1:], "cs") {
				return false
			}
		default:
			return false // a script or a command file
		}
	}
	return true
}

// InDir returns the entry of dirs that path lies below ("" if none); dirs
// end with "/" (schema temp_dirs).
func InDir(p string, dirs []string) string {
	for _, d := range dirs {
		if d != "" && strings.HasPrefix(p, d) {
			return d
		}
	}
	return ""
}

// Runtimes are the programs that run from a memfd or a deleted file as
// part of their normal work (processes.known_runtimes): runc re-executing
// itself from /memfd:runc_cloned:/proc/self/exe for every container
// start, systemd's executor after an upgrade. Both the executable and the
// parent must match.
type Runtimes struct {
	list     []schema.KnownRuntime
	tempDirs []string
}

// NewRuntimes builds the matcher of a policy.
func NewRuntimes(p *schema.Processes) Runtimes {
	return Runtimes{list: p.KnownRuntimes, tempDirs: p.TempDirs}
}

// Match returns the known runtime's executable pattern that p is, or "".
// The parent's own executable must be a file outside the temp dirs: a
// "runc" that itself runs from a memfd or /tmp vouches for nothing.
func (r Runtimes) Match(p *event.Process) string {
	if p == nil || len(p.Lineage) == 0 {
		return ""
	}
	parent := p.Lineage[0]
	if strings.HasPrefix(parent.Exe, MemfdPrefix) || InDir(parent.Exe, r.tempDirs) != "" {
		return ""
	}
	for _, k := range r.list {
		if exeMatch(k.Exe, p.Exe) && Names(k.Parents).Match(parent.Comm, parent.Exe) {
			return k.Exe
		}
	}
	return ""
}

// exeMatch: an exact path, or a prefix ending in "*" (memfd names contain
// slashes: "runc_cloned:/proc/self/exe").
func exeMatch(pat, exe string) bool {
	if exe == "" {
		return false
	}
	if p, ok := strings.CutSuffix(pat, "*"); ok {
		return strings.HasPrefix(exe, p)
	}
	return pat == exe
}
