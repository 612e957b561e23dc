package accounts

import (
	"os"
	"path"
	"slices"
	"strings"
)

// SudoersFile is one parsed sudoers file, before its includes are read.
type SudoersFile struct {
	Rules    []Rule
	Aliases  []Alias
	Includes []Include
	// NoAuth lists the user lists of `Defaults !authenticate` lines (nil
	// entries for a global Defaults): they make matching rules NOPASSWD.
	NoAuth [][]string
	// Bad lists lines that are not understood (visudo would reject them,
	// and sudo refuses to run with them, so they grant nothing).
	Bad []int
}

// Rule is one host spec of a user specification, with the commands that
// share a run-as list and a NOPASSWD state: `alice ALL=(root) NOPASSWD:
// /bin/ls, PASSWD: /bin/sh` gives two rules.
type Rule struct {
	Users    []string `json:"users"` // as written: names, %group, #uid, +netgroup, aliases, ALL, "!" negations
	Hosts    []string `json:"hosts"`
	RunAs    string   `json:"runas"` // "root" when not given, else "users" or "users:groups"
	NoPasswd bool     `json:"nopasswd"`
	Commands []string `json:"commands"`
	Line     int      `json:"line"`
	Text     string   `json:"text"` // the logical line, whitespace collapsed
}

// Alias is a User_Alias, Runas_Alias, Host_Alias or Cmnd_Alias definition.
type Alias struct {
	Kind    string // User_Alias, Runas_Alias, Host_Alias, Cmnd_Alias
	Name    string
	Members []string
}

// Include is an @include/#include (Dir false) or @includedir/#includedir.
type Include struct {
	Path string
	Dir  bool
	Line int
}

// sudoTagList lists the command tags, which end with a colon.
func sudoTagList() []string {
	return []string{"NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
		"LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT", "NOINTERCEPT"}
}

func isTag(w string) bool { return slices.Contains(sudoTagList(), w) }

// ParseSudoers parses one sudoers file (sudoers(5) syntax: comments, line
// continuations, aliases, Defaults, user specifications, includes). It
// does not read includes; LoadSudoers does.
func ParseSudoers(data []byte) SudoersFile {
	var f SudoersFile
	var logical strings.Builder
	start := 0
	lines(data, func(n int, l string) {
		if logical.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(l, "\\") && !strings.HasSuffix(l, "\\\\") {
			logical.WriteString(l[:len(l)-1])
			logical.WriteByte(' ')
			return
		}
		logical.WriteString(l)
		f.line(logical.String(), start)
		logical.Reset()
	})
	if logical.Len() > 0 {
		f.line(logical.String(), start)
	}
	return f
}

func (f *SudoersFile) line(l string, n int) {
	t := strings.TrimSpace(l)
	if t == "" {
		return
	}
	for _, d := range []string{"@includedir", "#includedir", "@include", "#include"} {
		if rest, ok := strings.CutPrefix(t, d); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			p := strings.Trim(strings.TrimSpace(rest), `"`)
			if p == "" {
				f.Bad = append(f.Bad, n)
			} else {
				f.Includes = append(f.Includes, Include{Path: p, Dir: strings.HasSuffix(d, "dir"), Line: n})
			}
			return
		}
	}
	// "#" starts a comment, except "#123" as a user (a uid) in a spec.
	if t[0] == '#' && (len(t) < 2 || t[1] < '0' || t[1] > '9') {
		return
	}
	t = stripComment(t)
	word := t
	if i := strings.IndexAny(t, " \t"); i >= 0 {
		word = t[:i]
	}
	switch {
	case strings.HasPrefix(word, "Defaults"):
		f.defaults(t)
	case strings.HasSuffix(word, "_Alias") || word == "Cmd_Alias":
		if !f.alias(word, strings.TrimSpace(t[len(word):])) {
			f.Bad = append(f.Bad, n)
		}
	default:
		if !f.spec(t, n) {
			f.Bad = append(f.Bad, n)
		}
	}
}

// stripComment drops a trailing "# comment" (not "#123", not escaped).
func stripComment(t string) string {
	for i := 1; i < len(t); i++ {
		if t[i] == '\\' {
			i++
			continue
		}
		if t[i] == '#' && (t[i-1] == ' ' || t[i-1] == '\t') && (i+1 == len(t) || t[i+1] < '0' || t[i+1] > '9') {
			return strings.TrimSpace(t[:i])
		}
	}
	return t
}

// defaults records `Defaults[:users] ... !authenticate ...`: the one
// Defaults setting that turns every matching rule into NOPASSWD.
func (f *SudoersFile) defaults(t string) {
	head, params := t, ""
	if i := strings.IndexAny(t, " \t"); i >= 0 {
		head, params = t[:i], t[i+1:]
	}
	var users []string
	switch {
	case head == "Defaults":
	case strings.HasPrefix(head, "Defaults:"):
		users = splitList(head[len("Defaults:"):])
	default:
		return // host, command and run-as bindings: not about who
	}
	for _, p := range splitList(params) {
		if strings.ReplaceAll(p, " ", "") == "!authenticate" {
			if users == nil {
				users = []string{"ALL"}
			}
			f.NoAuth = append(f.NoAuth, users)
		}
	}
}

// alias parses `NAME = a, b : NAME2 = c`.
func (f *SudoersFile) alias(kind, rest string) bool {
	if kind == "Cmd_Alias" {
		kind = "Cmnd_Alias"
	}
	switch kind {
	case "User_Alias", "Runas_Alias", "Host_Alias", "Cmnd_Alias":
	default:
		return false
	}
	for _, def := range splitTop(rest, ':') {
		name, list, ok := strings.Cut(def, "=")
		name = strings.TrimSpace(name)
		if !ok || !aliasName(name) {
			return false
		}
		f.Aliases = append(f.Aliases, Alias{Kind: kind, Name: name, Members: splitList(list)})
	}
	return true
}

func aliasName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// spec parses a user specification:
// `users hosts = [(runas)] [TAG:]... cmnd, ... [: hosts = ...]`.
func (f *SudoersFile) spec(t string, n int) bool {
	eq := indexTop(t, '=')
	if eq < 0 {
		return false
	}
	// The user list ends at the first blank not next to a comma.
	head := strings.TrimSpace(t[:eq])
	users, hosts, ok := splitUsersHosts(head)
	if !ok {
		return false
	}
	text := strings.Join(strings.Fields(t), " ")
	rest := tagBlanks(t[eq+1:])
	var all []Rule
	for {
		var next string
		cmnds := rest
		// The host spec ends at a top-level ':' that is not a tag's or a
		// digest's.
		if i := specEnd(rest); i >= 0 {
			cmnds, next = rest[:i], rest[i+1:]
		}
		rules, ok := parseCmnds(cmnds)
		if !ok {
			return false
		}
		for _, r := range rules {
			r.Users, r.Hosts, r.Line, r.Text = users, hosts, n, text
			all = append(all, r)
		}
		if next == "" {
			f.Rules = append(f.Rules, all...)
			return true
		}
		eq := indexTop(next, '=')
		if eq < 0 {
			return false
		}
		hosts = splitList(next[:eq])
		if len(hosts) == 0 {
			return false
		}
		rest = next[eq+1:]
	}
}

// tagBlanks removes blanks between a tag and its colon ("NOPASSWD :"),
// which sudo's lexer accepts.
func tagBlanks(s string) string {
	for _, tag := range sudoTagList() {
		for from := 0; ; {
			i := strings.Index(s[from:], tag)
			if i < 0 {
				break
			}
			i += from
			j := i + len(tag)
			for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
				j++
			}
			if j > i+len(tag) && j < len(s) && s[j] == ':' && (i == 0 || !isWordByte(s[i-1])) {
				s = s[:i+len(tag)] + s[j:]
			}
			from = i + len(tag)
		}
	}
	return s
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func splitUsersHosts(head string) (users, hosts []string, ok bool) {
	// Normalise ", " so that the only blanks left separate the two lists.
	fields := strings.Fields(head)
	var b []string
	for i := 0; i < len(fields); i++ {
		if len(b) > 0 && (strings.HasSuffix(b[len(b)-1], ",") || strings.HasPrefix(fields[i], ",")) {
			b[len(b)-1] += fields[i]
			continue
		}
		b = append(b, fields[i])
	}
	if len(b) != 2 {
		return nil, nil, false
	}
	users, hosts = splitList(b[0]), splitList(b[1])
	return users, hosts, len(users) > 0 && len(hosts) > 0
}

// specEnd finds the ':' that starts another host spec, skipping tags
// ("NOPASSWD:"), digests ("sha256:...") and parenthesised run-as lists.
func specEnd(s string) int {
	depth := 0
	wordStart := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
		case ' ', '\t', ',':
			wordStart = i + 1
		case ':':
			if depth > 0 {
				continue
			}
			w := s[wordStart:i]
			if isTag(w) || strings.HasPrefix(w, "sha") {
				wordStart = i + 1
				continue
			}
			return i
		}
	}
	return -1
}

// parseCmnds parses one Cmnd_Spec_List, where run-as and tags carry over
// to the following commands until overridden.
func parseCmnds(s string) ([]Rule, bool) {
	var out []Rule
	runas, nopasswd := "root", false
	for _, item := range splitTop(s, ',') {
		item = strings.TrimSpace(item)
		if strings.HasPrefix(item, "(") {
			end := strings.IndexByte(item, ')')
			if end < 0 {
				return nil, false
			}
			runas = normRunAs(item[1:end])
			item = strings.TrimSpace(item[end+1:])
		}
	tags:
		for {
			w, rest, _ := strings.Cut(item, " ")
			switch {
			case strings.HasSuffix(w, ":") && isTag(w[:len(w)-1]):
				switch w {
				case "NOPASSWD:":
					nopasswd = true
				case "PASSWD:":
					nopasswd = false
				}
			case strings.Contains(w, ":") && isTag(w[:strings.IndexByte(w, ':')]):
				// "NOPASSWD:ALL" without a blank.
				tag, cmd, _ := strings.Cut(w, ":")
				nopasswd = tag == "NOPASSWD" || (nopasswd && tag != "PASSWD")
				rest = strings.TrimSpace(cmd + " " + rest)
			case isOption(w):
				// ROLE=, TYPE=, CWD=, CHROOT=, TIMEOUT=, NOTBEFORE=, ...
			default:
				break tags
			}
			item = strings.TrimSpace(rest)
		}
		if item == "" {
			return nil, false
		}
		item = strings.Join(strings.Fields(item), " ")
		if k := len(out) - 1; k >= 0 && out[k].RunAs == runas && out[k].NoPasswd == nopasswd {
			out[k].Commands = append(out[k].Commands, item)
			continue
		}
		out = append(out, Rule{RunAs: runas, NoPasswd: nopasswd, Commands: []string{item}})
	}
	return out, len(out) > 0
}

func isOption(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	switch k {
	case "ROLE", "TYPE", "CWD", "CHROOT", "TIMEOUT", "NOTBEFORE", "NOTAFTER", "APPARMOR_PROFILE", "PRIVS", "LIMITPRIVS":
		return ok
	}
	return false
}

// normRunAs renders "(ALL : ALL)" as "ALL:ALL" and "()" as "root".
func normRunAs(s string) string {
	u, g, ok := strings.Cut(s, ":")
	us, gs := strings.Join(splitList(u), ","), strings.Join(splitList(g), ",")
	switch {
	case !ok && us == "":
		return "root"
	case !ok:
		return us
	case us == "":
		return "root:" + gs
	}
	return us + ":" + gs
}

// splitList splits a comma-separated list, trimming blanks and quotes.
func splitList(s string) []string {
	var out []string
	for _, p := range splitTop(s, ',') {
		p = strings.Trim(strings.TrimSpace(p), `"`)
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// splitTop splits on sep outside parentheses and backslash escapes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, last := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[last:i])
				last = i + 1
			}
		}
	}
	return append(out, s[last:])
}

// indexTop finds c outside parentheses and backslash escapes.
func indexTop(s string, c byte) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
		case c:
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// Sudoers is a whole sudoers policy: the main file and everything it
// includes, in the order sudo reads them.
type Sudoers struct {
	Files   []string // host paths read, in order
	Dirs    []string // includedirs, whose new files matter too
	Rules   []SourcedRule
	Aliases map[string][]string // "User_Alias NAME" → members; later definitions win
	NoAuth  [][]string
	Bad     []string // "path:line"
}

// SourcedRule is a Rule with the file it came from.
type SourcedRule struct {
	Rule
	File string `json:"file"`
}

// maxIncludeDepth bounds include nesting (sudo allows 128; real policies
// use one level) so an include loop cannot hang the sensor.
const maxIncludeDepth = 8

// LoadSudoers reads the sudoers policy at file (a host path such as
// "/etc/sudoers") below root, following includes the way sudo does:
// relative paths are relative to the including file's directory, and an
// includedir reads the files whose names neither end in "~" nor contain a
// ".", in lexical order. A missing main file yields an empty policy.
func LoadSudoers(root, file string) (*Sudoers, error) {
	s := &Sudoers{Aliases: map[string][]string{}}
	err := s.load(root, file, 0)
	return s, err
}

func (s *Sudoers) load(root, file string, depth int) error {
	if depth > maxIncludeDepth || slices.Contains(s.Files, file) {
		return nil
	}
	data, err := os.ReadFile(hostPath(root, file))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	s.Files = append(s.Files, file)
	f := ParseSudoers(data)
	for _, a := range f.Aliases {
		s.Aliases[a.Kind+" "+a.Name] = a.Members
	}
	for _, r := range f.Rules {
		s.Rules = append(s.Rules, SourcedRule{Rule: r, File: file})
	}
	s.NoAuth = append(s.NoAuth, f.NoAuth...)
	for _, n := range f.Bad {
		s.Bad = append(s.Bad, file+":"+itoa(n))
	}
	for _, inc := range f.Includes {
		if strings.Contains(inc.Path, "%h") {
			continue // per-host includes: the agent does not guess the name sudo would use
		}
		p := inc.Path
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(file), p)
		}
		if !inc.Dir {
			if err := s.load(root, p, depth+1); err != nil {
				return err
			}
			continue
		}
		if !slices.Contains(s.Dirs, p) {
			s.Dirs = append(s.Dirs, p)
		}
		for _, name := range IncludedirFiles(root, p) {
			if err := s.load(root, path.Join(p, name), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// IncludedirFiles lists the files sudo reads from an includedir (host path
// dir below root), in order.
func IncludedirFiles(root, dir string) []string {
	ents, err := os.ReadDir(hostPath(root, dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, "~") || strings.Contains(n, ".") || e.IsDir() {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
