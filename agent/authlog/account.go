package authlog

import (
	"strings"

	"github.com/picket-agent/picket/agent/event"
)

// Outcomes for kinds that do not imply one.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// DetailSession marks Su events taken from PAM's "session opened" line.
// util-linux su logs both that and its own "(to root) alice on pts/0" for one
// switch, so detectors that count su sessions should count one of the two.
const DetailSession = "session"

// parseSudo parses sudo's
// `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`,
// where a leading field without "=" (`3 incorrect password attempts`,
// `user NOT in sudoers`, `command not allowed`) means sudo refused.
func parseSudo(ev *event.Event, msg string) error {
	if strings.HasPrefix(msg, "pam_") {
		return ErrNotAuth // sudo's own line carries the outcome
	}
	msg = strings.TrimLeft(msg, " ")
	user, rest, ok := strings.Cut(msg, " : ")
	if !ok || user == "" || strings.IndexByte(user, ' ') >= 0 {
		return ErrNotAuth
	}
	// COMMAND is last and may itself contain " ; ", so everything after it
	// is the command.
	i := strings.Index(rest, "COMMAND=")
	if i < 0 {
		return ErrNotAuth
	}
	head, cmd := rest[:i], rest[i+len("COMMAND="):]
	ev.Outcome = OutcomeSuccess
	if first, _, _ := strings.Cut(head, " ; "); !strings.Contains(first, "=") && first != "" {
		ev.Outcome = OutcomeFailure
	}
	if j := strings.Index(head, "USER="); j >= 0 && (j == 0 || head[j-1] == ' ') {
		target := head[j+len("USER="):]
		if k := strings.Index(target, " ; "); k >= 0 {
			target = target[:k]
		}
		ev.TargetUser = target
	}
	ev.Kind, ev.User, ev.Detail = event.Sudo, user, strings.TrimRight(cmd, " ")
	return nil
}

// parseSu handles util-linux su (`(to root) alice on pts/0`,
// `FAILED SU (to root) alice on pts/0`), shadow su (`Successful su for root
// by alice`, `FAILED su for root by alice`, `+ pts/0 alice:root`) and PAM
// session lines, including the old `su(pam_unix)` style.
func parseSu(ev *event.Event, msg string) error {
	ev.Kind = event.Su
	switch {
	case strings.HasPrefix(msg, "(to "):
		ev.Outcome = OutcomeSuccess
		return suTo(ev, msg)
	case strings.HasPrefix(msg, "FAILED SU (to "):
		ev.Outcome = OutcomeFailure
		return suTo(ev, msg[len("FAILED SU "):])
	case strings.HasPrefix(msg, "Successful su for "):
		ev.Outcome = OutcomeSuccess
		return suForBy(ev, msg[len("Successful su for "):])
	case strings.HasPrefix(msg, "FAILED su for "):
		ev.Outcome = OutcomeFailure
		return suForBy(ev, msg[len("FAILED su for "):])
	case strings.HasPrefix(msg, "+ "), strings.HasPrefix(msg, "- "):
		ev.Outcome = OutcomeSuccess
		if msg[0] == '-' {
			ev.Outcome = OutcomeFailure
		}
		tty, pair, ok := strings.Cut(msg[2:], " ")
		from, to, ok2 := strings.Cut(pair, ":")
		if !ok || !ok2 || from == "" || to == "" {
			return ErrNotAuth
		}
		ev.User, ev.TargetUser, ev.Detail = from, to, tty
		return nil
	case strings.HasPrefix(msg, "pam_"):
		return parsePAMLine(ev, msg, "su")
	case strings.HasPrefix(msg, "session opened for user "):
		return suSession(ev, msg) // su(pam_unix), no module prefix
	}
	return ErrNotAuth
}

// suTo parses `(to TARGET) USER on TTY`.
func suTo(ev *event.Event, s string) error {
	r := s[len("(to "):]
	target, r, ok := strings.Cut(r, ") ")
	if !ok || target == "" {
		return ErrNotAuth
	}
	user, tty, _ := strings.Cut(r, " on ")
	if user == "" {
		return ErrNotAuth
	}
	ev.User, ev.TargetUser, ev.Detail = user, target, tty
	return nil
}

// suForBy parses `TARGET by USER`.
func suForBy(ev *event.Event, s string) error {
	target, user, ok := strings.Cut(s, " by ")
	if !ok || target == "" || user == "" {
		return ErrNotAuth
	}
	ev.User, ev.TargetUser = strings.TrimRight(user, " "), target
	return nil
}

// suSession parses `session opened for user root(uid=0) by alice(uid=1000)`
// and the old `session opened for user news by (uid=0)` (no caller name).
func suSession(ev *event.Event, s string) error {
	r, ok := strings.CutPrefix(s, "session opened for user ")
	if !ok {
		return ErrNotAuth
	}
	i := strings.LastIndex(r, " by ")
	if i < 0 {
		return ErrNotAuth
	}
	target, by := stripUID(r[:i]), stripUID(strings.TrimRight(r[i+len(" by "):], " "))
	if target == "" {
		return ErrNotAuth
	}
	ev.Kind, ev.Outcome, ev.User, ev.TargetUser, ev.Detail = event.Su, OutcomeSuccess, by, target, DetailSession
	return nil
}

// stripUID drops a trailing "(uid=N)".
func stripUID(s string) string {
	if i := strings.LastIndex(s, "(uid="); i >= 0 && strings.HasSuffix(s, ")") {
		return s[:i]
	}
	return s
}

// parseAccount handles shadow-utils' syslog lines. Each tool logs some
// changes twice (once per /etc/group and /etc/gshadow); the shadow-file
// duplicates are dropped so one change is one event. Detail keeps the whole
// message, which is short and says exactly what changed.
func parseAccount(ev *event.Event, program, msg string) error {
	if strings.HasPrefix(msg, "pam_") {
		return parsePAMLine(ev, msg, program)
	}
	if strings.Contains(msg, "shadow group") || strings.Contains(msg, "/etc/gshadow") {
		return ErrNotAuth
	}
	switch {
	case strings.HasPrefix(msg, "new user: name="):
		name, rest, _ := strings.Cut(msg[len("new user: name="):], ", ")
		if name == "" {
			return ErrNotAuth
		}
		ev.Kind, ev.User, ev.Detail = event.UserAdd, name, rest
		return nil
	case strings.HasPrefix(msg, "new group: name="):
		name, rest, _ := strings.Cut(msg[len("new group: name="):], ", ")
		if name == "" {
			return ErrNotAuth
		}
		ev.Kind, ev.TargetUser, ev.Detail = event.GroupAdd, name, rest
		return nil
	case strings.HasPrefix(msg, "add '"), strings.HasPrefix(msg, "delete '"):
		// `add 'bob' to group 'sudo'`, `delete 'bob' from group 'sudo'`
		user, rest, ok := quoted(msg)
		group, _, ok2 := quoted(rest)
		if !ok || !ok2 || !strings.Contains(rest, " group ") {
			return ErrNotAuth
		}
		ev.Kind, ev.User, ev.TargetUser, ev.Detail = event.UserMod, user, group, msg
		return nil
	case strings.HasPrefix(msg, "delete user '"):
		user, _, ok := quoted(msg)
		if !ok {
			return ErrNotAuth
		}
		ev.Kind, ev.User, ev.Detail = event.UserDel, user, msg
		return nil
	case strings.HasPrefix(msg, "change user "), strings.HasPrefix(msg, "lock user "),
		strings.HasPrefix(msg, "unlock user "):
		user, _, ok := quoted(msg)
		if !ok {
			return ErrNotAuth
		}
		ev.Kind, ev.User, ev.Detail = event.UserMod, user, msg
		return nil
	case strings.HasPrefix(msg, "removed group '"):
		group, _, ok := quoted(msg)
		if !ok {
			return ErrNotAuth
		}
		ev.Kind, ev.TargetUser, ev.Detail = event.GroupMod, group, msg
		return nil
	case strings.HasPrefix(msg, "change group '"), strings.HasPrefix(msg, "change gid for '"):
		group, _, ok := quoted(msg)
		if !ok {
			return ErrNotAuth
		}
		ev.Kind, ev.TargetUser, ev.Detail = event.GroupMod, group, msg
		return nil
	case strings.HasPrefix(msg, "group changed in /etc/group (group "):
		// shadow-utils ≥ 4.8: `group changed in /etc/group (group devs/1002, new name: ops)`
		r := msg[len("group changed in /etc/group (group "):]
		group, _, ok := strings.Cut(r, "/")
		if !ok || group == "" {
			return ErrNotAuth
		}
		ev.Kind, ev.TargetUser, ev.Detail = event.GroupMod, group, msg
		return nil
	case strings.HasPrefix(msg, "password for '"):
		// `password for 'bob' changed by 'root'` (shadow passwd without PAM)
		user, rest, ok := quoted(msg)
		if !ok || !strings.HasPrefix(rest, " changed by ") {
			return ErrNotAuth
		}
		ev.Kind, ev.User, ev.Detail = event.PasswdChange, user, msg
		return nil
	}
	return ErrNotAuth
}
