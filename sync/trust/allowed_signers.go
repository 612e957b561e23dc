package trust

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigner is one entry of an ssh-keygen(1) allowed_signers file:
//
//	principals [options] keytype base64-key [comment]
//
// The parser follows OpenSSH's sshsig.c so that a file git's own
// `git verify-commit` accepts means the same thing here, with one deliberate
// difference: anything picket cannot honour exactly (cert-authority, SSH
// certificates, unknown options) is an error instead of being ignored.
type AllowedSigner struct {
	Source string // file name given to the parser, for messages
	Line   int    // 1-based

	// Principals is the comma-separated first field, verbatim (patterns with
	// * and ? are kept as written). git reports it as the signer's identity;
	// picket does not match it against the committer, and neither does git.
	Principals []string

	// Namespaces is nil when the entry has no namespaces= option (any
	// namespace); otherwise a pattern list as in ssh_config(5): * and ?
	// wildcards, a leading ! negates.
	Namespaces []string

	// ValidAfter and ValidBefore bound the committer time of commits the key
	// may sign (inclusive at second resolution, as ssh-keygen's verify-time
	// check). Zero means unbounded.
	ValidAfter  time.Time
	ValidBefore time.Time

	Key     ssh.PublicKey
	Comment string
}

// ParseError is a syntax or policy error in an allowed_signers file.
type ParseError struct {
	Source string
	Line   int
	Msg    string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg) }

// maxAllowedSignersLine bounds one line so a hostile repository file cannot
// make the scanner buffer grow without limit (real lines are < 1 KiB; an RSA
// 16384 key is ~2.8 KiB).
const maxAllowedSignersLine = 64 << 10

// ParseAllowedSigners parses an allowed_signers file. Times without a Z (or
// UTC) suffix are in the host's local time zone, as ssh-keygen reads them;
// the agent normally runs with TZ=UTC under systemd, but the operator's file
// means what ssh-keygen on that host would make of it. source names the file
// in errors ("source:line: ...").
func ParseAllowedSigners(data []byte, source string) ([]AllowedSigner, error) {
	return parseAllowedSigners(data, source, time.Local)
}

func parseAllowedSigners(data []byte, source string, loc *time.Location) ([]AllowedSigner, error) {
	var out []AllowedSigner
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxAllowedSignersLine)
	n := 0
	for sc.Scan() {
		n++
		e, ok, msg := parseAllowedSignersLine(sc.Text(), loc)
		if msg != "" {
			return nil, &ParseError{Source: source, Line: n, Msg: msg}
		}
		if ok {
			e.Source, e.Line = source, n
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Source: source, Line: n + 1, Msg: err.Error()}
	}
	return out, nil
}

// parseAllowedSignersLine returns ok=false for blank and comment lines and a
// non-empty msg for a bad line.
func parseAllowedSignersLine(line string, loc *time.Location) (e AllowedSigner, ok bool, msg string) {
	s := strings.TrimRight(line, "\r\n")
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return e, false, ""
	}
	if strings.IndexByte(s, 0) >= 0 {
		return e, false, "NUL byte in line"
	}

	// Principals: one whitespace-delimited token, optionally double-quoted
	// (OpenSSH strdelimw).
	var principals string
	if s[0] == '"' {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return e, false, "principals: missing closing quote"
		}
		principals, s = s[1:1+end], s[2+end:]
		if s != "" && s[0] != ' ' && s[0] != '\t' {
			return e, false, "principals: text after closing quote"
		}
	} else {
		principals, s = field(s)
	}
	if principals == "" {
		return e, false, "empty principals"
	}
	e.Principals = strings.Split(principals, ",")
	s = strings.TrimLeft(s, " \t")
	if s == "" {
		return e, false, "missing key"
	}

	// Options are present when the next token is not a key type (that is
	// how sshkey_read / sshkey_advance_past_options decide).
	if tok, _ := field(s); !isKeyType(tok) {
		opts, rest := splitOptions(s)
		if msg := parseOptions(opts, &e, loc); msg != "" {
			return e, false, msg
		}
		s = strings.TrimLeft(rest, " \t")
		if s == "" {
			return e, false, "missing key"
		}
	}

	keyType, s := field(s)
	s = strings.TrimLeft(s, " \t")
	b64, s := field(s)
	e.Comment = strings.TrimSpace(s)
	if msg := checkKeyType(keyType); msg != "" {
		return e, false, msg
	}
	if b64 == "" {
		return e, false, "missing base64 key after " + keyType
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return e, false, "key: bad base64: " + err.Error()
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return e, false, "key: " + err.Error()
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return e, false, "SSH certificates are not supported: list the signing keys themselves"
	}
	if key.Type() != keyType {
		return e, false, fmt.Sprintf("key type %q does not match the key data (%s)", keyType, key.Type())
	}
	e.Key = key
	return e, true, ""
}

// field splits s at the first space or tab.
func field(s string) (tok, rest string) {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// splitOptions returns the options token: everything up to the first space
// or tab outside double quotes, with \" not ending a quote
// (sshkey_advance_past_options).
func splitOptions(s string) (opts, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '\t'):
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// Key types accepted as signing keys. DSA is gone from OpenSSH and
// certificates would need CA semantics picket does not implement, so both are
// named in the error rather than treated as unknown options.
var supportedKeyTypes = map[string]bool{
	ssh.KeyAlgoED25519:    true,
	ssh.KeyAlgoRSA:        true,
	ssh.KeyAlgoECDSA256:   true,
	ssh.KeyAlgoECDSA384:   true,
	ssh.KeyAlgoECDSA521:   true,
	ssh.KeyAlgoSKED25519:  true,
	ssh.KeyAlgoSKECDSA256: true,
}

func isKeyType(tok string) bool {
	return supportedKeyTypes[tok] || tok == ssh.KeyAlgoDSA || strings.HasSuffix(tok, "-cert-v01@openssh.com")
}

func checkKeyType(t string) string {
	switch {
	case supportedKeyTypes[t]:
		return ""
	case strings.HasSuffix(t, "-cert-v01@openssh.com"):
		return "SSH certificates are not supported: list the signing keys themselves"
	case t == ssh.KeyAlgoDSA:
		return "ssh-dss (DSA) keys are not supported"
	default:
		return fmt.Sprintf("unknown key type %q", t)
	}
}

// parseOptions mirrors sshsigopt_parse: comma-separated, names matched
// case-insensitively, values double-quoted, each option at most once.
func parseOptions(opts string, e *AllowedSigner, loc *time.Location) string {
	var haveNS, haveAfter, haveBefore bool
	for opts != "" {
		name := opts
		if i := strings.IndexAny(opts, "=,"); i >= 0 {
			name = opts[:i]
		}
		lname := strings.ToLower(name)
		if lname == "cert-authority" && (len(opts) == len(name) || opts[len(name)] == ',') {
			return "cert-authority is not supported: list the signing keys themselves"
		}
		if len(opts) == len(name) || opts[len(name)] != '=' {
			return fmt.Sprintf("unknown option %q (or unknown key type)", name)
		}
		val, rest, msg := dequote(opts[len(name)+1:])
		if msg != "" {
			return fmt.Sprintf("option %s: %s", lname, msg)
		}
		switch lname {
		case "namespaces":
			if haveNS {
				return `repeated "namespaces" option`
			}
			haveNS = true
			e.Namespaces = strings.Split(val, ",")
		case "valid-after", "valid-before":
			t, err := parseSSHTime(val, loc)
			if err != "" {
				return fmt.Sprintf("option %s: %s", lname, err)
			}
			if lname == "valid-after" {
				if haveAfter {
					return `repeated "valid-after" option`
				}
				haveAfter, e.ValidAfter = true, t
			} else {
				if haveBefore {
					return `repeated "valid-before" option`
				}
				haveBefore, e.ValidBefore = true, t
			}
		default:
			return fmt.Sprintf("unknown option %q", name)
		}
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return fmt.Sprintf("option %s: unexpected text %q after value", lname, rest)
		}
		opts = rest[1:]
		if opts == "" {
			return "unexpected end of options after ','"
		}
	}
	if haveAfter && haveBefore && !e.ValidBefore.After(e.ValidAfter) {
		return `"valid-before" is not after "valid-after"`
	}
	return ""
}

// dequote reads a double-quoted value; \" is an escaped quote (opt_dequote).
func dequote(s string) (val, rest, msg string) {
	if s == "" || s[0] != '"' {
		return "", "", "value must be double-quoted"
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '"':
			return b.String(), s[i+1:], ""
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		}
		b.WriteByte(s[i])
	}
	return "", "", "missing closing quote"
}

// parseSSHTime reads YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally
// followed by Z or UTC (case-insensitive) for UTC; otherwise the time is in
// loc. This is OpenSSH's parse_absolute_time.
func parseSSHTime(s string, loc *time.Location) (time.Time, string) {
	v := s
	switch u := strings.ToUpper(v); {
	case len(v) > 1 && strings.HasSuffix(u, "Z"):
		v, loc = v[:len(v)-1], time.UTC
	case len(v) > 3 && strings.HasSuffix(u, "UTC"):
		v, loc = v[:len(v)-3], time.UTC
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return time.Time{}, fmt.Sprintf("bad time %q: want YYYYMMDD[HHMM[SS]][Z]", s)
		}
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Sprintf("bad time %q: want YYYYMMDD[HHMM[SS]][Z]", s)
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Sprintf("bad time %q: %v", s, err)
	}
	if t.Unix() <= 0 {
		// ssh-keygen treats 0 as "unset"; refuse rather than guess.
		return time.Time{}, fmt.Sprintf("bad time %q: not after 1970", s)
	}
	return t, ""
}

// matchPatternList is OpenSSH's match_pattern_list without case folding:
// true when some pattern matches and no negated (!) pattern does.
func matchPatternList(s string, patterns []string) bool {
	positive := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return false
			}
			positive = true
		}
	}
	return positive
}

// matchPattern matches s against a glob with * (any run) and ? (one byte).
// Iterative with single backtrack point, so it is linear-ish even on hostile
// patterns like "*a*a*a*b".
func matchPattern(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// permits reports whether the entry allows a signature in namespace at time
// t, and if not, why: kind is WrongNamespace or OutsideValidity.
func (e *AllowedSigner) permits(namespace string, t time.Time) (RejectKind, string) {
	where := fmt.Sprintf("%s:%d", e.Source, e.Line)
	if e.Namespaces != nil && !matchPatternList(namespace, e.Namespaces) {
		return WrongNamespace, fmt.Sprintf("the allowed_signers entry %s restricts the key to namespaces %q, which excludes %q",
			where, strings.Join(e.Namespaces, ","), namespace)
	}
	sec := t.Unix()
	if !e.ValidAfter.IsZero() && sec < e.ValidAfter.Unix() {
		return OutsideValidity, fmt.Sprintf("committer time %s is before valid-after %s of the allowed_signers entry %s (key not yet valid)",
			t.UTC().Format(time.RFC3339), e.ValidAfter.UTC().Format(time.RFC3339), where)
	}
	if !e.ValidBefore.IsZero() && sec > e.ValidBefore.Unix() {
		return OutsideValidity, fmt.Sprintf("committer time %s is after valid-before %s of the allowed_signers entry %s (key expired)",
			t.UTC().Format(time.RFC3339), e.ValidBefore.UTC().Format(time.RFC3339), where)
	}
	return 0, ""
}

// canonical is the entry's contribution to TrustSet.Hash: everything that
// changes what the entry permits, nothing that does not (comments, source,
// line numbers, option spelling).
func (e *AllowedSigner) canonical() string {
	var b strings.Builder
	b.WriteString("ssh ")
	b.WriteString(strings.Join(e.Principals, ","))
	if e.Namespaces != nil {
		fmt.Fprintf(&b, " ns=%q", strings.Join(e.Namespaces, ","))
	}
	if !e.ValidAfter.IsZero() {
		fmt.Fprintf(&b, " after=%d", e.ValidAfter.Unix())
	}
	if !e.ValidBefore.IsZero() {
		fmt.Fprintf(&b, " before=%d", e.ValidBefore.Unix())
	}
	b.WriteByte(' ')
	b.WriteString(e.Key.Type())
	b.WriteByte(' ')
	b.WriteString(base64.StdEncoding.EncodeToString(e.Key.Marshal()))
	return b.String()
}
