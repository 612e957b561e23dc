// Package authlog turns authentication log lines (sshd, sudo, su and the
// shadow-utils account tools) into typed events. The auth sensor feeds it
// syslog-file lines (/var/log/auth.log, /var/log/secure) through
// Parser.ParseLine; the journald reader, which gets the header fields
// separately, calls ParseMessage; the replay command uses both to re-run old
// logs through the detectors.
//
// It sits on the hot path of brute-force detection, where a flood of
// attempts is exactly when it must keep up, so it uses no regexps: each
// message is classified by its first bytes and picked apart with
// strings.Index/Cut and netip.ParseAddr, and the returned event's strings
// are slices of the input rather than copies.
//
// Attacker-controlled text (user names offered to sshd) may contain spaces
// and even a fake " from 1.2.3.4 port 22" tail; the parsers anchor on the
// last well-formed address in the line, which sshd writes after the user
// name, so a crafted name cannot redirect blame to another address.
package authlog

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
)

var (
	// ErrNotAuth reports a well-formed line that carries nothing the
	// detectors use (session bookkeeping, other daemons, sshd chatter).
	// Callers drop it silently.
	ErrNotAuth = errors.New("authlog: not an authentication event")
	// ErrMalformed reports a line whose syslog header (timestamp, host,
	// program) cannot be parsed. Callers count these: a rising count means
	// a log format the agent does not understand and so blind spots.
	ErrMalformed = errors.New("authlog: malformed syslog line")
)

// Parser parses the lines of one log stream. It carries the year inference
// for year-less timestamps, so use one Parser per file or stream; it is not
// safe for concurrent use.
type Parser struct {
	// Source is copied into every event (e.g. "file:/var/log/auth.log").
	Source string
	// Years infers years for traditional timestamps. When nil, the first
	// ParseLine creates one with the current time and time.Local; callers
	// replaying an old file should set it from the file's mtime.
	Years *logtime.Years
}

// ParseLine parses one syslog-file line, traditional
// (`Dec 10 06:55:46 host sshd[24200]: msg`) or RFC 3339
// (`2026-11-25T10:00:00.123456+00:00 host sshd[24200]: msg`). A trailing
// CR/LF is ignored. The event's Line is line itself.
func (p *Parser) ParseLine(line string) (event.Event, error) {
	if p.Years == nil {
		p.Years = logtime.NewYears(time.Now(), time.Local)
	}
	s := trimEOL(line)
	t, rest, ok := p.Years.ParsePrefix(s)
	if !ok {
		return event.Event{}, ErrMalformed
	}
	host, rest, ok := strings.Cut(rest, " ")
	if !ok || host == "" {
		return event.Event{}, ErrMalformed
	}
	// Some writers pad the host field (`combo  -- root[2421]: ROOT LOGIN`).
	program, pid, msg, ok := splitTag(strings.TrimLeft(rest, " "))
	if !ok {
		return event.Event{}, ErrMalformed
	}
	ev := event.Event{Time: t, Source: p.Source, Line: line, Host: host, Program: program, PID: pid}
	if err := dispatch(&ev, program, msg); err != nil {
		return event.Event{}, err
	}
	return ev, nil
}

// ParseMessage parses a message whose header fields came separately, as
// from journald (MESSAGE, SYSLOG_IDENTIFIER, _PID, _HOSTNAME). Line is set
// to msg.
func (p *Parser) ParseMessage(t time.Time, host, program string, pid int, msg string) (event.Event, error) {
	ev := event.Event{Time: t, Source: p.Source, Line: msg, Host: host, Program: program, PID: pid}
	if err := dispatch(&ev, program, trimEOL(msg)); err != nil {
		return event.Event{}, err
	}
	return ev, nil
}

// ParseMessage is Parser.ParseMessage for callers that set no Source; it
// needs no year inference, so no Parser state.
func ParseMessage(t time.Time, host, program string, pid int, msg string) (event.Event, error) {
	var p Parser
	return p.ParseMessage(t, host, program, pid, msg)
}

func trimEOL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// splitTag splits `prog[pid]: msg`, `prog: msg` and the colon-less
// `prog msg` some daemons write (`syslogd 1.4.1: restart.`). Only an empty
// tag or a broken pid is malformed; anything else is at worst ErrNotAuth.
func splitTag(s string) (program string, pid int, msg string, ok bool) {
	i := 0
	for i < len(s) && s[i] != '[' && s[i] != ':' && s[i] != ' ' {
		i++
	}
	program = s[:i]
	if program == "" {
		return "", 0, "", false
	}
	if i == len(s) {
		return program, 0, "", true
	}
	switch s[i] {
	case '[':
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			if pid > 1<<30 {
				return "", 0, "", false
			}
			pid = pid*10 + int(s[j]-'0')
			j++
		}
		if j == i+1 || j >= len(s) || s[j] != ']' {
			return "", 0, "", false
		}
		j++
		if j < len(s) && s[j] == ':' {
			j++
		}
		return program, pid, afterSpace(s[j:]), true
	case ':':
		return program, 0, afterSpace(s[i+1:]), true
	default:
		return program, 0, s[i+1:], true
	}
}

func afterSpace(s string) string {
	if len(s) > 0 && s[0] == ' ' {
		return s[1:]
	}
	return s
}

// dispatch routes a message by program name. Unknown programs cost one
// switch, which matters because auth.log is shared with cron, systemd-logind
// and others.
func dispatch(ev *event.Event, program, msg string) error {
	switch program {
	case "sshd", "sshd-session", "sshd-auth":
		return parseSSHD(ev, msg, true)
	case "sshd(pam_unix)":
		return parseOldSSHDPAM(ev, msg)
	case "sudo":
		return parseSudo(ev, msg)
	case "su", "su(pam_unix)":
		return parseSu(ev, msg)
	case "useradd", "usermod", "userdel", "groupadd", "groupmod", "passwd", "chpasswd":
		return parseAccount(ev, program, msg)
	}
	return ErrNotAuth
}

// parseAddr parses an address token; IPv4-mapped IPv6 is unmapped so one
// client is one key for the detectors whichever socket family sshd used.
func parseAddr(s string) (netip.Addr, bool) {
	if len(s) < 2 || len(s) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// addrPort parses `IP[ port N]` at the start of s and returns the rest.
func addrPort(s string) (addr netip.Addr, port int, rest string, ok bool) {
	tok, rest, _ := strings.Cut(s, " ")
	addr, ok = parseAddr(tok)
	if !ok {
		return netip.Addr{}, 0, "", false
	}
	if len(tok) < len(s) {
		rest = s[len(tok):]
	}
	if r, found := strings.CutPrefix(rest, " port "); found {
		n, i := leadingInt(r)
		if i > 0 && n <= 65535 {
			port, rest = n, r[i:]
		}
	}
	return addr, port, rest, true
}

// leadingInt parses the decimal digits at the start of s; i is how many
// bytes were used (0 when none). Values are capped to stay far from overflow.
func leadingInt(s string) (n, i int) {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if n < 1<<31 {
			n = n*10 + int(s[i]-'0')
		}
		i++
	}
	return n, i
}

// lastFrom finds the last ` from IP[ port N]` in s whose address parses and
// returns what precedes it and what follows the port. Searching from the end
// is what defeats user names that embed a fake address.
func lastFrom(s string) (before string, addr netip.Addr, port int, after string, ok bool) {
	end := len(s)
	for {
		i := strings.LastIndex(s[:end], " from ")
		if i < 0 {
			return "", netip.Addr{}, 0, "", false
		}
		if a, p, rest, good := addrPort(s[i+6:]); good {
			return s[:i], a, p, rest, true
		}
		end = i
	}
}

// userAddrPort parses the `[invalid |authenticating ]user U IP[ port N]` or
// bare `IP[ port N]` form newer sshd uses in disconnect messages. The
// address is the last token (before the port), so names with spaces work.
func userAddrPort(s string) (user string, invalid bool, addr netip.Addr, port int, ok bool) {
	s = strings.TrimRight(s, " ")
	if i := strings.LastIndex(s, " port "); i >= 0 {
		if n, k := leadingInt(s[i+6:]); k > 0 && i+6+k == len(s) && n <= 65535 {
			port, s = n, s[:i]
		}
	}
	tok := s
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		tok, user = s[i+1:], s[:i]
	}
	addr, ok = parseAddr(tok)
	if !ok {
		return "", false, netip.Addr{}, 0, false
	}
	switch {
	case strings.HasPrefix(user, "invalid user "):
		user, invalid = user[len("invalid user "):], true
	case strings.HasPrefix(user, "authenticating user "):
		user = user[len("authenticating user "):]
	case strings.HasPrefix(user, "user "):
		user = user[len("user "):]
	case user != "":
		return "", false, netip.Addr{}, 0, false
	}
	return user, invalid, addr, port, true
}

// quoted returns the first 'single-quoted' value in s and the text after it;
// shadow-utils quotes every name it logs that way.
func quoted(s string) (val, rest string, ok bool) {
	i := strings.IndexByte(s, '\'')
	if i < 0 {
		return "", "", false
	}
	j := strings.IndexByte(s[i+1:], '\'')
	if j < 0 {
		return "", "", false
	}
	return s[i+1 : i+1+j], s[i+2+j:], true
}
