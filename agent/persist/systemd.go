package persist

import (
	"bytes"
	"strings"
)

// UnitDirective is one setting of a unit file that says what runs or
// when: ExecStart= and the other Exec*, a timer's OnCalendar=, the Unit=
// a timer or path unit starts, a socket's Listen*, Environment= (an
// LD_PRELOAD there is as good as ExecStart), User=.
type UnitDirective struct {
	Line    int
	Section string
	Key     string
	Value   string
}

// String renders the directive as written: `ExecStart=/usr/bin/x`.
func (d UnitDirective) String() string { return d.Key + "=" + d.Value }

func unitKeyMatters(k string) bool {
	if strings.HasPrefix(k, "Exec") || strings.HasPrefix(k, "Listen") || strings.HasPrefix(k, "Path") {
		return true
	}
	switch k {
	case "OnCalendar", "OnBootSec", "OnStartupSec", "OnActiveSec", "OnUnitActiveSec", "OnUnitInactiveSec",
		"Unit", "DirectoryNotEmpty", "Environment", "EnvironmentFile", "User", "Group":
		return true
	}
	return false
}

// ParseUnit returns the directives of a unit file (or drop-in) that
// decide what runs, in file order. Comments, blank lines and other
// settings are ignored, so editing a Description is not a change.
func ParseUnit(data []byte) []UnitDirective {
	var out []UnitDirective
	section := ""
	n := 0
	var cont strings.Builder
	start := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		t := strings.TrimSpace(string(l))
		if cont.Len() == 0 {
			if t == "" || t[0] == '#' || t[0] == ';' {
				continue
			}
			start = n
		}
		if strings.HasSuffix(t, "\\") {
			cont.WriteString(strings.TrimSuffix(t, "\\"))
			cont.WriteByte(' ')
			continue
		}
		cont.WriteString(t)
		t = cont.String()
		cont.Reset()
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = t[1 : len(t)-1]
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		if !ok || !unitKeyMatters(k) {
			continue
		}
		out = append(out, UnitDirective{Line: start, Section: section, Key: k, Value: strings.Join(strings.Fields(v), " ")})
	}
	return out
}
