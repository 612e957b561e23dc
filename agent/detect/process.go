package detect

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	procsensor "github.com/picket-agent/picket/agent/proc"
	"github.com/picket-agent/picket/agent/procname"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// Process invariant rule ids.
const (
	RuleWebShell      = "process.web_shell"
	RuleWebChild      = "process.web_suspicious_child"
	RuleDBChild       = "process.db_child"
	RuleReverseShell  = "process.reverse_shell"
	RuleDecodeExec    = "process.decode_exec"
	RuleExecTmp       = "process.exec_tmp"
	RuleExecDeleted   = "process.exec_deleted"
	RuleExecMemfd     = "process.exec_memfd"
	maxLineageInText  = 8
	maxCmdlineInText  = 160
	maxArgsForPattern = 4096
)

// names is the shared process-name matcher.
type names = procname.Names

// processDetector checks every exec against the invariants. It keeps no
// state: the lineage comes with the event (the process table fills it).
type processDetector struct {
	cfg      schema.ProcessInvariants
	web      names
	sh       names
	sus      names
	db       names
	dbOK     names
	tmp      []string
	sys      []string
	session  procname.Session
	runtimes procname.Runtimes
}

func newProcessDetector(p *schema.Policy) *processDetector {
	l := &p.Processes
	return &processDetector{cfg: p.Detectors.ProcessInvariants, web: l.WebServers, sh: l.Shells, sus: l.SuspiciousChildren,
		db: l.DBServers, dbOK: l.DBAllowedChildren, tmp: l.TempDirs, sys: p.Detectors.Baseline.SystemDirs,
		session: procname.NewSession(l), runtimes: procname.NewRuntimes(l)}
}

// Where a program was started from, when that is suspicious by itself.
type origin struct {
	rule string // RuleExecTmp, RuleExecDeleted or RuleExecMemfd
	what string // for reasons: "from /tmp/", "from a memfd", "of a deleted binary"
}

func (d *processDetector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Kind != event.ProcExec || ev.Proc == nil {
		return
	}
	p := ev.Proc
	cmd := cmdline(p.Args)
	from := d.origin(ev)
	tree := d.treeEntities(p)
	// Web server ancestry: the nearest web-server ancestor below which this
	// process runs (a web server's own workers are web servers too).
	if !d.web.Match(p.Comm, p.Exe) {
		if i := d.ancestorIndex(p, d.web); i >= 0 {
			// The worker right above the chain is the correlation key
			// (everything one compromised worker runs is one story); the
			// process itself comes first, as what to kill: the worker
			// serves other requests. The text starts at the top of the run
			// of web servers (nginx → php-fpm master → php-fpm worker).
			root := p.Lineage[i]
			top := i
			for top+1 < len(p.Lineage) && d.web.Match(p.Lineage[top+1].Comm, p.Lineage[top+1].Exe) {
				top++
			}
			ent := []signal.Entity{pidEntity(p.PID), pidEntity(root.PID)}
			switch {
			case d.sh.Match(p.Comm, p.Exe):
				d.emit(ev, emit, RuleWebShell, d.cfg.WebShellWeight, ent, true,
					fmt.Sprintf("web server %s spawned a shell: %s", serverName(root), lineage(p, top)))
			case d.sus.Match(p.Comm, p.Exe):
				d.emit(ev, emit, RuleWebChild, d.cfg.WebChildWeight, ent, true,
					fmt.Sprintf("web server %s spawned %s: %s", serverName(root), p.Comm, lineage(p, top)))
			case from.rule != "":
				// A web server has no business starting a program it just
				// wrote to /tmp (or one with no file at all): a dropper.
				d.emit(ev, emit, RuleWebChild, d.cfg.WebChildWeight, ent, true,
					fmt.Sprintf("web server %s started a program %s (%s): %s", serverName(root), from.what, p.Exe, lineage(p, top)))
				from = origin{}
			}
		}
	}
	// Database servers run their own binaries only. The child comes first
	// (what to kill), the server second (what correlates).
	if len(p.Lineage) > 0 && !d.db.Match(p.Comm, p.Exe) && !d.dbOK.Match(p.Comm, p.Exe) {
		parent := p.Lineage[0]
		if d.db.Match(parent.Comm, parent.Exe) && parent.Exe != p.Exe {
			d.emit(ev, emit, RuleDBChild, d.cfg.DBChildWeight,
				[]signal.Entity{pidEntity(p.PID), pidEntity(parent.PID)}, true,
				fmt.Sprintf("database server %s spawned %s: %s", serverName(parent), p.Comm, lineage(p, 0)))
		}
	}
	if what := reverseShell(cmd); what != "" {
		d.emit(ev, emit, RuleReverseShell, d.cfg.ReverseShellWeight, tree, true,
			fmt.Sprintf("reverse shell (%s) by uid %d: %s", what, p.UID, lineage(p, min(len(p.Lineage), maxLineageInText)-1)))
	} else if decodeExec(cmd) {
		d.emit(ev, emit, RuleDecodeExec, d.cfg.ReverseShellWeight, tree, true,
			fmt.Sprintf("decode-and-run pipeline by uid %d: %s", p.UID, lineage(p, min(len(p.Lineage), maxLineageInText)-1)))
	}
	switch from.rule {
	case RuleExecMemfd:
		d.emit(ev, emit, RuleExecMemfd, d.cfg.ExecMemfdWeight, tree, false,
			fmt.Sprintf("running a program from a memfd (no file on disk) %s: %s", p.Exe, lineage(p, min(len(p.Lineage), 3)-1)))
	case RuleExecDeleted:
		d.emit(ev, emit, RuleExecDeleted, d.cfg.ExecDeletedWeight, tree, false,
			fmt.Sprintf("running a deleted binary %s: %s", p.Exe, lineage(p, min(len(p.Lineage), 3)-1)))
	case RuleExecTmp:
		d.emit(ev, emit, RuleExecTmp, d.cfg.ExecTmpWeight, tree, false,
			fmt.Sprintf("execution %s: %s: %s", from.what, p.Exe, lineage(p, min(len(p.Lineage), 3)-1)))
	}
}

// origin classifies where the program of an exec lives, when that alone is
// suspicious: a memfd (fileless), a deleted file, a temp dir. Known
// runtimes are nothing (runc's memfd copy of itself below containerd-shim
// on every container start). A process found running at start (or by a
// rescan) whose binary below a system directory is gone was upgraded in
// place by the package manager, which every apt run leaves behind until
// the daemon restarts.
func (d *processDetector) origin(ev *event.Event) origin {
	p := ev.Proc
	memfd := strings.HasPrefix(p.Exe, procname.MemfdPrefix)
	dir := procname.InDir(p.Exe, d.tmp)
	if !memfd && !p.Deleted && dir == "" {
		return origin{}
	}
	if d.runtimes.Match(p) != "" {
		return origin{}
	}
	switch {
	case memfd:
		return origin{RuleExecMemfd, "from a memfd"}
	case p.Deleted:
		if (ev.Detail == procsensor.DetailInitial || ev.Detail == procsensor.DetailRescan) && dir == "" && underAny(p.Exe, d.sys) {
			return origin{}
		}
		return origin{RuleExecDeleted, "of a deleted binary"}
	}
	return origin{RuleExecTmp, "from " + dir}
}

// underAny reports whether p lies below one of dirs (written without a
// trailing slash: "/usr").
func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		d = strings.TrimSuffix(d, "/")
		if d != "" && strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// ancestorIndex returns the index in the lineage of the nearest ancestor
// matching n, or -1.
func (d *processDetector) ancestorIndex(p *event.Process, n names) int {
	for i, a := range p.Lineage {
		if n.Match(a.Comm, a.Exe) {
			return i
		}
	}
	return -1
}

// emit sends one process signal. strong says whether the finding is an
// invariant that names an actor (a shell below a web server, a reverse
// shell): only those carry the user, so that the incident joins that
// user's logins. Heuristic findings (a build's binary in /tmp) keyed on
// the user would glue together everything a developer runs all day; root
// is everyone's and is never a key.
func (d *processDetector) emit(ev *event.Event, emit func(signal.Signal), rule string, w float64, ents []signal.Entity, strong bool, reason string) {
	evidence := *ev
	evidence.Line = "exec " + cmdline(ev.Proc.Args)
	ents = slices.Clone(ents)
	if p := ev.Proc; strong && p.User != "" && p.UID != 0 {
		ents = append(ents, signal.Entity{Kind: signal.User, Value: p.User})
	}
	if c := ev.Proc.Container; c != nil {
		ents = append(ents, signal.Entity{Kind: signal.Container, Value: c.ID})
	}
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: signal.Execution, Weight: w, Entities: ents, Reason: reason,
		Evidence: []event.Event{evidence}, Subject: "pid:" + strconv.Itoa(ev.Proc.PID)})
}

// treeEntities are the correlation keys of a process outside a web
// server: itself (first: what kill-tree targets) and its parent, so a
// chain of suspicious children of one process forms one incident — unless
// the parent belongs to the ordinary session at the top of the tree (PID
// 1, sshd, tmux, cron, a login shell, a container shim): siblings that
// share only a session ancestor are unrelated (two test suites started
// from one shell), and the session is never the attacker's tree.
func (d *processDetector) treeEntities(p *event.Process) []signal.Entity {
	ents := []signal.Entity{pidEntity(p.PID)}
	if ppid, ok := d.session.Parent(p); ok {
		ents = append(ents, pidEntity(ppid))
	}
	return ents
}

func pidEntity(pid int) signal.Entity {
	return signal.Entity{Kind: signal.Process, Value: strconv.Itoa(pid)}
}

func ancestorName(a event.Ancestor) string {
	name := a.Comm
	if name == "" {
		name = path.Base(a.Exe)
	}
	return fmt.Sprintf("%s(%d)", name, a.PID)
}

// serverName names a matched server, with its executable when the process
// name differs from it (a renamed or symlinked binary).
func serverName(a event.Ancestor) string {
	base := path.Base(a.Exe)
	if a.Exe == "" || a.Comm == "" || strings.HasPrefix(base, a.Comm) {
		return ancestorName(a)
	}
	return fmt.Sprintf("%s(%d, %s)", a.Comm, a.PID, a.Exe)
}

// lineage spells the chain from ancestor upto (index in Lineage, -1 for
// none) down to the process and its command line:
// nginx(812) → php-fpm8.2(1201) → sh(4410) → curl(4411) 'curl -s http://…'.
func lineage(p *event.Process, upto int) string {
	var b strings.Builder
	if upto >= len(p.Lineage) {
		upto = len(p.Lineage) - 1
	}
	for i := upto; i >= 0; i-- {
		b.WriteString(ancestorName(p.Lineage[i]))
		b.WriteString(" → ")
	}
	name := p.Comm
	if name == "" {
		name = path.Base(p.Exe)
	}
	fmt.Fprintf(&b, "%s(%d)", name, p.PID)
	if cmd := cmdline(p.Args); cmd != "" {
		if len(cmd) > maxCmdlineInText {
			cmd = cmd[:maxCmdlineInText] + "…"
		}
		fmt.Fprintf(&b, " %s", strconv.Quote(cmd))
	}
	return b.String()
}

func cmdline(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > maxArgsForPattern {
		s = s[:maxArgsForPattern]
	}
	return s
}

// reverseShell names the reverse-shell idiom in a command line, or "".
func reverseShell(cmd string) string {
	c := strings.ToLower(cmd)
	switch {
	case strings.Contains(c, "/dev/tcp/") || strings.Contains(c, "/dev/udp/"):
		return "/dev/tcp redirection"
	case hasFlagAfter(c, []string{"nc", "ncat", "netcat", "nc.traditional", "nc.openbsd"}, []string{"-e", "-c", "--exec", "--sh-exec"}):
		return "netcat executing a shell"
	case strings.Contains(c, "mkfifo") && (strings.Contains(c, "/tmp/") || strings.Contains(c, "/dev/shm/") || strings.Contains(c, "/var/tmp/")) &&
		(strings.Contains(c, " nc ") || strings.Contains(c, "|nc ") || strings.Contains(c, "sh -i") || strings.Contains(c, "openssl")):
		return "named pipe to a network tool"
	case strings.Contains(c, "pty.spawn"):
		return "python pty.spawn"
	case (strings.Contains(c, "python") || strings.Contains(c, "perl") || strings.Contains(c, "ruby") || strings.Contains(c, "php")) &&
		strings.Contains(c, "socket") && (strings.Contains(c, "connect") || strings.Contains(c, "tcpsocket") || strings.Contains(c, "fsockopen")) &&
		(strings.Contains(c, "sh") || strings.Contains(c, "exec") || strings.Contains(c, "dup2")):
		return "scripted socket shell"
	case strings.Contains(c, "socat") && strings.Contains(c, "exec:"):
		return "socat exec"
	}
	return ""
}

// hasFlagAfter reports whether one of tools appears as a word followed
// later by one of flags.
func hasFlagAfter(c string, tools, flags []string) bool {
	fields := strings.FieldsFunc(c, func(r rune) bool { return r == ' ' || r == '|' || r == ';' || r == '&' || r == '\'' || r == '"' })
	for i, f := range fields {
		for _, t := range tools {
			if path.Base(f) != t {
				continue
			}
			for _, g := range fields[i+1:] {
				for _, fl := range flags {
					if g == fl {
						return true
					}
				}
			}
		}
	}
	return false
}

// decodeExec reports base64/xxd decoding piped into a shell or interpreter.
func decodeExec(cmd string) bool {
	c := strings.ToLower(cmd)
	dec := strings.Contains(c, "base64 -d") || strings.Contains(c, "base64 --decode") || strings.Contains(c, "base64 -di") ||
		strings.Contains(c, "xxd -r") || strings.Contains(c, "openssl enc -d") || strings.Contains(c, "openssl base64 -d")
	if !dec {
		return false
	}
	i := strings.LastIndex(c, "|")
	if i < 0 {
		return false
	}
	tail := strings.Fields(c[i+1:])
	if len(tail) == 0 {
		return false
	}
	switch path.Base(tail[0]) {
	case "sh", "bash", "dash", "zsh", "ksh", "python", "python3", "perl", "php", "ruby", "busybox":
		return true
	}
	return false
}
