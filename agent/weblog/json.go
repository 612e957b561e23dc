package weblog

import (
	"strings"
	"unicode/utf8"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
)

// parseJSON parses one flat JSON object as written by nginx's
// `escape=json` log formats. encoding/json would allocate a map or need a
// fixed struct per user format; a small scanner handles any key set and
// allocates only to decode escaped strings. Unknown keys are skipped
// (nested values included); known keys are the nginx variable names plus a
// few common aliases.
func parseJSON(ev *event.Event, s string) bool {
	sc := scanner{s: s}
	sc.ws()
	if !sc.byte('{') {
		return false
	}
	var known bool
	var uri, requestURI, hostAlias string
	sc.ws()
	if sc.byte('}') {
		return false
	}
	for {
		sc.ws()
		key, ok := sc.str()
		if !ok {
			return false
		}
		sc.ws()
		if !sc.byte(':') {
			return false
		}
		sc.ws()
		val, ok := sc.value()
		if !ok {
			return false
		}
		hit := true
		switch key {
		case "remote_addr", "client_ip", "clientip", "client", "remote_ip", "ip":
			ev.Addr, _ = parseAddr(val)
		case "time_iso8601", "time", "timestamp", "@timestamp":
			t, rest, ok := logtime.ParseRFC3339Prefix(val)
			if !ok || rest != "" {
				return false
			}
			ev.Time = t
		case "time_local":
			if ev.Time, ok = logtime.ParseCLF(val); !ok {
				return false
			}
		case "msec":
			if ev.Time, ok = parseMsec(val); !ok {
				return false
			}
		case "request":
			splitRequest(ev, val)
		case "request_method", "method":
			ev.HTTPMethod = dash(val)
		case "request_uri":
			requestURI = val
		case "uri", "path":
			uri = val
		case "status":
			if ev.Status, ok = atoi(val); !ok || ev.Status > 999 {
				return false
			}
		case "body_bytes_sent", "bytes_sent", "size":
			// body_bytes_sent is what combined logs; prefer it.
			if key != "body_bytes_sent" && ev.Size != 0 {
				break
			}
			if val == "-" || val == "" {
				break
			}
			n, ok := atoi(val)
			if !ok {
				return false
			}
			ev.Size = int64(n)
		case "http_referer", "referer", "referrer":
			ev.Referer = dash(val)
		case "http_user_agent", "user_agent":
			ev.UserAgent = dash(val)
		case "host":
			ev.VHost = val
		case "http_host", "server_name", "vhost":
			hostAlias = val
		case "remote_user":
			ev.User = dash(val)
		default:
			hit = false
		}
		known = known || hit
		sc.ws()
		if sc.byte('}') {
			break
		}
		if !sc.byte(',') {
			return false
		}
	}
	sc.ws()
	if sc.i != len(s) || !known {
		return false
	}
	// $request_uri carries the query string, $uri does not (and is
	// normalised after rewrites); prefer what the client sent.
	if ev.Path == "" {
		switch {
		case requestURI != "":
			ev.Path = requestURI
		case uri != "":
			ev.Path = uri
		}
	}
	if ev.VHost == "" {
		ev.VHost = hostAlias
	}
	return true
}

// scanner walks a JSON text without building values.
type scanner struct {
	s string
	i int
}

func (sc *scanner) ws() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *scanner) byte(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// value returns a string's decoded text or a scalar's literal text; objects
// and arrays are skipped and yield "".
func (sc *scanner) value() (val string, ok bool) {
	if sc.i >= len(sc.s) {
		return "", false
	}
	switch c := sc.s[sc.i]; {
	case c == '"':
		return sc.str()
	case c == '{' || c == '[':
		return "", sc.skipNested()
	default:
		start := sc.i
		for sc.i < len(sc.s) {
			c := sc.s[sc.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			sc.i++
		}
		lit := sc.s[start:sc.i]
		if !validScalar(lit) {
			return "", false
		}
		if lit == "null" {
			lit = ""
		}
		return lit, true
	}
}

// validScalar accepts JSON numbers and the three literals. Numbers are
// checked loosely (digits, sign, dot, exponent), which is all the fields
// we read need.
func validScalar(s string) bool {
	switch s {
	case "true", "false", "null":
		return true
	case "":
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// skipNested skips an object or array, minding strings, with a depth cap so
// hostile input cannot make it work hard.
func (sc *scanner) skipNested() bool {
	depth := 0
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '{', '[':
			depth++
			if depth > 64 {
				return false
			}
		case '}', ']':
			depth--
			if depth == 0 {
				sc.i++
				return true
			}
		case '"':
			if _, ok := sc.str(); !ok {
				return false
			}
			continue
		}
		sc.i++
	}
	return false
}

// str reads a JSON string at the cursor. Without escapes it is a slice of
// the input.
func (sc *scanner) str() (string, bool) {
	if !sc.byte('"') {
		return "", false
	}
	start := sc.i
	escaped := false
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; c {
		case '"':
			raw := sc.s[start:sc.i]
			sc.i++
			if !escaped {
				return raw, true
			}
			return unescape(raw)
		case '\\':
			escaped = true
			sc.i += 2
			continue
		}
		sc.i++
	}
	return "", false
}

// unescape decodes JSON escapes in raw (the text between the quotes).
func unescape(raw string) (string, bool) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", false
		}
		switch raw[i] {
		case '"', '\\', '/':
			b.WriteByte(raw[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(raw, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo, ok := hex4(raw, i+3); ok && lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError // lone surrogate
			}
			b.WriteRune(r)
		default:
			// nginx without escape=json writes \xHH; keep such text as
			// logged rather than reject the line.
			b.WriteByte('\\')
			b.WriteByte(raw[i])
		}
	}
	return b.String(), true
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
