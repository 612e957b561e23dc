package accounts

import (
	"bytes"
	"strconv"
	"strings"
)

// User is one /etc/passwd entry. The password field is reduced to its
// state: a hash kept in passwd (old systems) is never stored.
type User struct {
	Name  string `json:"name"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	GECOS string `json:"gecos,omitempty"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
	// Password is the state of passwd's own password field: "shadow" ("x",
	// look in /etc/shadow), or a PasswordState.
	Password PasswordState `json:"password"`
	Line     int           `json:"line"` // 1-based line number in the file
}

// PasswordState is what the agent keeps of a password field: never the
// hash, only whether there is one.
type PasswordState string

// Password states.
const (
	PasswordShadow PasswordState = "shadow" // passwd "x": the real field is in /etc/shadow
	PasswordEmpty  PasswordState = "empty"  // no password at all: login without one may work
	PasswordLocked PasswordState = "locked" // "!", "*", "!!", "!<hash>": no password login
	PasswordSet    PasswordState = "set"    // a hash
)

// passwordState classifies a password field without keeping it.
func passwordState(f string) PasswordState {
	switch {
	case f == "":
		return PasswordEmpty
	case f == "x":
		return PasswordShadow
	case f[0] == '!' || f[0] == '*':
		return PasswordLocked
	}
	return PasswordSet
}

// Group is one /etc/group entry.
type Group struct {
	Name    string   `json:"name"`
	GID     int      `json:"gid"`
	Members []string `json:"members,omitempty"`
	Line    int      `json:"line"`
}

// Shadow is what the agent keeps of one /etc/shadow entry: the password
// state and the date of the last change, never the hash.
type Shadow struct {
	Name     string        `json:"name"`
	Password PasswordState `json:"password"`
	// LastChange is the day of the last password change (days since
	// 1970-01-01), -1 when the field is empty.
	LastChange int `json:"last_change"`
	Line       int `json:"line"`
}

// lines calls fn for each line with its 1-based number, without the line
// terminator. A trailing "\r" is dropped too: files edited on Windows and
// copied over still parse.
func lines(data []byte, fn func(n int, line string)) {
	n := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		fn(n, strings.TrimSuffix(string(l), "\r"))
	}
}

// skippable reports lines that are not entries: blank lines, comments (not
// valid in these files, but tolerated by nss and common in test images) and
// NIS compat markers ("+", "-", "+@netgroup"), which name no local account.
func skippable(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || t[0] == '#' || t[0] == '+' || t[0] == '-'
}

// validName accepts what the shadow tools and nss accept as a name: no
// separator, whitespace or control characters. It is deliberately loose
// (uppercase, dots, a trailing "$" for Samba machine accounts): the agent
// reports what the system would use, not what useradd would create.
func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ':' || c == ',' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseID parses a uid or gid as nss does: a decimal number that fits
// in 32 bits.
func parseID(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(v), true
}

// ParsePasswd parses an /etc/passwd file. Lines that are not valid entries
// are skipped and their numbers returned in bad: nss ignores them too, so
// they grant nothing, but an operator may want to know.
func ParsePasswd(data []byte) (users []User, bad []int) {
	lines(data, func(n int, l string) {
		if skippable(l) {
			return
		}
		f := strings.Split(l, ":")
		if len(f) != 7 || !validName(f[0]) {
			bad = append(bad, n)
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			bad = append(bad, n)
			return
		}
		users = append(users, User{Name: f[0], UID: uid, GID: gid, GECOS: f[4], Home: f[5], Shell: f[6],
			Password: passwordState(f[1]), Line: n})
	})
	return users, bad
}

// ParseGroup parses an /etc/group file; see ParsePasswd for bad.
func ParseGroup(data []byte) (groups []Group, bad []int) {
	lines(data, func(n int, l string) {
		if skippable(l) {
			return
		}
		f := strings.Split(l, ":")
		if len(f) != 4 || !validName(f[0]) {
			bad = append(bad, n)
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			bad = append(bad, n)
			return
		}
		g := Group{Name: f[0], GID: gid, Line: n}
		for m := range strings.SplitSeq(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
		groups = append(groups, g)
	})
	return groups, bad
}

// ParseShadow parses an /etc/shadow file, keeping only each password's
// state and change date; see ParsePasswd for bad.
func ParseShadow(data []byte) (entries []Shadow, bad []int) {
	lines(data, func(n int, l string) {
		if skippable(l) {
			return
		}
		f := strings.Split(l, ":")
		if len(f) != 9 || !validName(f[0]) {
			bad = append(bad, n)
			return
		}
		s := Shadow{Name: f[0], Password: passwordState(f[1]), LastChange: -1, Line: n}
		if s.Password == PasswordShadow {
			// "x" in shadow itself is not a hash crypt(3) can match.
			s.Password = PasswordLocked
		}
		if d, err := strconv.Atoi(f[2]); err == nil && d >= 0 {
			s.LastChange = d
		}
		entries = append(entries, s)
	})
	return entries, bad
}

// LoginDefs is what the agent reads from /etc/login.defs: the uid range
// of regular users (below UIDMin is a system account).
type LoginDefs struct {
	UIDMin    int
	SysUIDMax int
}

// DefaultLoginDefs returns shadow-utils' compiled-in defaults, used when
// /etc/login.defs is absent or silent.
func DefaultLoginDefs() LoginDefs { return LoginDefs{UIDMin: 1000, SysUIDMax: 999} }

// ParseLoginDefs reads UID_MIN and SYS_UID_MAX, falling back to
// shadow-utils' defaults for missing or unreadable values.
func ParseLoginDefs(data []byte) LoginDefs {
	d := DefaultLoginDefs()
	lines(data, func(_ int, l string) {
		f := strings.Fields(l)
		if len(f) < 2 {
			return
		}
		v, ok := parseID(f[1])
		if !ok {
			return
		}
		switch f[0] {
		case "UID_MIN":
			d.UIDMin = v
		case "SYS_UID_MAX":
			d.SysUIDMax = v
		}
	})
	return d
}

// System reports whether uid is a system account's: below the regular
// range, or the overflow user nobody (65534), which must never log in
// either.
func (d LoginDefs) System(uid int) bool {
	return uid < d.UIDMin || uid <= d.SysUIDMax || uid == 65534
}

// nologin reports shells that refuse a login.
func nologin(shell string) bool {
	if shell == "" {
		// An empty shell field means /bin/sh to login(1): a real shell.
		return false
	}
	switch base(shell) {
	case "nologin", "false", "true", "sync", "shutdown", "halt":
		return true
	}
	return false
}

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// redactPasswd renders a passwd line for evidence: a hash in the password
// field (old systems without shadow) is replaced, everything else kept.
func redactPasswd(l string) string {
	f := strings.SplitN(l, ":", 3)
	if len(f) == 3 && passwordState(f[1]) == PasswordSet {
		return f[0] + ":<hash redacted>:" + f[2]
	}
	return l
}
