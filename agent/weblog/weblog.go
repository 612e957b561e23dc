// Package weblog turns web server access log lines into web.request events:
// nginx/Apache "combined" and "common" formats, Apache's vhost-prefixed
// combined, and JSON lines as written by nginx's `log_format ... escape=json`.
// The web access-log sensor calls it for every line it tails and the replay
// command for old files; detectors then look for scanners, path probing and
// error floods per client address.
//
// Scanners send garbage request lines (TLS handshakes to a plain-HTTP port,
// binary probes); those are still requests from an address and are kept,
// with an empty HTTPMethod and the raw request text as Path, because a
// garbage flood is itself a signal.
//
// Like the auth parser it avoids regexps and copies: CLF fields are slices
// of the line, with the server's escaping (\" and \xHH) left in place, which
// is also what an analyst would grep the original file for. JSON strings are
// decoded, since JSON escapes are part of the syntax, and allocate only when
// they contain an escape.
package weblog

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
)

// Format names accepted in Parser.Format.
const (
	FormatAuto     = "auto"     // JSON when the line starts with '{', else combined or common
	FormatCombined = "combined" // CLF plus quoted referer and user agent (vhost prefix allowed)
	FormatCommon   = "common"   // CLF; anything after the size is ignored
	FormatJSON     = "json"     // one flat JSON object per line
)

var (
	// ErrMalformed reports a line that does not match the format. Callers
	// count these; a steady rate usually means a log_format mismatch.
	ErrMalformed = errors.New("weblog: malformed access log line")
	// ErrUnknownFormat reports a Parser.Format this package does not know;
	// a configuration error, not a property of the line.
	ErrUnknownFormat = errors.New("weblog: unknown format")
)

// Parser parses access log lines. It holds no state between lines and is
// safe for concurrent use.
type Parser struct {
	// Format is one of the Format constants; empty means FormatAuto.
	Format string
	// Source is copied into every event (e.g. "file:/var/log/nginx/access.log").
	Source string
}

// ParseLine parses one access log line; a trailing CR/LF is ignored and the
// event's Line is line itself.
func (p *Parser) ParseLine(line string) (event.Event, error) {
	s := line
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	ev := event.Event{Kind: event.WebRequest, Source: p.Source, Line: line}
	var ok bool
	switch p.Format {
	case "", FormatAuto:
		if len(s) > 0 && s[0] == '{' {
			ok = parseJSON(&ev, s)
		} else {
			ok = parseCLF(&ev, s, false, false)
		}
	case FormatCombined:
		ok = parseCLF(&ev, s, true, false)
	case FormatCommon:
		ok = parseCLF(&ev, s, false, true)
	case FormatJSON:
		ok = parseJSON(&ev, s)
	default:
		return event.Event{}, ErrUnknownFormat
	}
	if !ok {
		return event.Event{}, ErrMalformed
	}
	return ev, nil
}

// parseAddr parses a client address, unmapping IPv4-mapped IPv6 so one
// client is one key whichever socket accepted it. A host name (Apache with
// HostnameLookups) yields the zero Addr.
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

// parseCLF parses
// `[vhost ]client ident user [time] "request" status size[ "referer" "ua"]`.
// needUA demands the combined tail; common ignores whatever follows size.
func parseCLF(ev *event.Event, s string, needUA, common bool) bool {
	open := strings.Index(s, " [")
	if open < 0 {
		return false
	}
	if !clientFields(ev, s[:open]) {
		return false
	}

	r := s[open+2:]
	end := strings.IndexByte(r, ']')
	if end < 0 {
		return false
	}
	var ok bool
	if ev.Time, ok = logtime.ParseCLF(r[:end]); !ok {
		return false
	}
	r, ok = strings.CutPrefix(r[end+1:], " \"")
	if !ok {
		return false
	}
	req, r, ok := quotedTail(r)
	if !ok {
		return false
	}
	splitRequest(ev, req)

	// status and size
	r, ok = strings.CutPrefix(r, " ")
	if !ok {
		return false
	}
	var status string
	status, r, _ = strings.Cut(r, " ")
	if ev.Status, ok = atoi(status); !ok || ev.Status > 999 {
		return false
	}
	size, r, hasMore := strings.Cut(r, " ")
	if size != "-" {
		n, ok := atoi(size)
		if !ok {
			return false
		}
		ev.Size = int64(n)
	}
	if common {
		return true
	}
	if !hasMore {
		return !needUA
	}
	// combined: "referer" "ua", then anything (request time, upstream...).
	r, ok = strings.CutPrefix(r, "\"")
	if !ok {
		return !needUA
	}
	ref, r, ok := quotedTail(r)
	if !ok {
		return false
	}
	r, ok = strings.CutPrefix(r, " \"")
	if !ok {
		return false
	}
	ua, _, ok := quotedTail(r)
	if !ok {
		return false
	}
	ev.Referer, ev.UserAgent = dash(ref), dash(ua)
	return true
}

// clientFields parses `client ident user` or `vhost client ident user`. A
// user name with spaces also makes more than three fields; the vhost form
// is recognised by its first field not being an address.
func clientFields(ev *event.Event, head string) bool {
	f0, r, ok := strings.Cut(head, " ")
	if !ok || f0 == "" {
		return false
	}
	f1, user, ok := strings.Cut(r, " ")
	if !ok {
		return false
	}
	client := f0
	if strings.IndexByte(user, ' ') >= 0 {
		if _, isAddr := parseAddr(f0); !isAddr {
			ev.VHost, client = f0, f1
			_, user, _ = strings.Cut(user, " ")
		}
	}
	ev.Addr, _ = parseAddr(client)
	if user != "-" {
		ev.User = user
	}
	return true
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// quotedTail returns the text up to the closing quote of a string whose
// opening quote was already consumed, honouring backslash escapes, and the
// rest after the closing quote.
func quotedTail(s string) (val, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// splitRequest fills HTTPMethod and Path from a request line. Anything that
// does not start with a method token is kept whole as Path.
func splitRequest(ev *event.Event, req string) {
	if req == "-" || req == "" {
		return
	}
	method, rest, ok := strings.Cut(req, " ")
	if !ok || !isToken(method) || rest == "" {
		ev.Path = req
		return
	}
	if i := strings.LastIndex(rest, " HTTP/"); i >= 0 {
		rest = rest[:i]
	}
	ev.HTTPMethod, ev.Path = method, rest
}

// isToken accepts plausible method names: letters, '-' and '_', short.
func isToken(s string) bool {
	if len(s) == 0 || len(s) > 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// atoi parses a non-negative decimal that fits comfortably in an int.
func atoi(s string) (int, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	return n, true
}

// parseMsec parses nginx's $msec (`1700000000.123`).
func parseMsec(s string) (time.Time, bool) {
	sec, frac, _ := strings.Cut(s, ".")
	n, ok := atoi(sec)
	if !ok {
		return time.Time{}, false
	}
	ns := 0
	scale := 100_000_000
	for i := 0; i < len(frac) && scale > 0; i++ {
		c := frac[i] - '0'
		if c > 9 {
			return time.Time{}, false
		}
		ns += int(c) * scale
		scale /= 10
	}
	return time.Unix(int64(n), int64(ns)).UTC(), true
}
