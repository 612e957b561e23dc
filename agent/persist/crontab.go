package persist

import (
	"bytes"
	"strings"
)

// CronEntry is one meaningful crontab line: a job or an environment
// assignment.
type CronEntry struct {
	Line int
	// Schedule is the five time fields or an @keyword; empty for an
	// environment line.
	Schedule string
	// User is the account a system crontab (/etc/crontab, /etc/cron.d)
	// runs the job as; empty in user crontabs, where the file's name is
	// the user.
	User    string
	Command string
	// Env is NAME for an environment line (NAME=value), Command the value.
	Env string
	// Text is the line as written, trimmed.
	Text string
}

// Key is the entry with blanks normalised, so re-indenting a line is not a
// change.
func (e CronEntry) Key() string {
	if e.Env != "" {
		return e.Env + "=" + e.Command
	}
	return strings.Join(strings.Fields(e.Schedule+" "+e.User+" "+e.Command), " ")
}

func cronMacro(s string) bool {
	switch strings.ToLower(s) {
	case "@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return true
	}
	return false
}

// ParseCrontab parses a crontab. system selects the system format, with a
// user field after the schedule (/etc/crontab, /etc/cron.d/*). Lines cron
// would reject are returned in bad: cron skips them too, so they run
// nothing.
func ParseCrontab(data []byte, system bool) (entries []CronEntry, bad []int) {
	n := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		t := strings.TrimSpace(string(l))
		if t == "" || t[0] == '#' {
			continue
		}
		if name, val, ok := envLine(t); ok {
			entries = append(entries, CronEntry{Line: n, Env: name, Command: val, Text: t})
			continue
		}
		e, ok := cronJob(t, system)
		if !ok {
			bad = append(bad, n)
			continue
		}
		e.Line, e.Text = n, t
		entries = append(entries, e)
	}
	return entries, bad
}

// envLine recognises NAME = value (cron allows blanks around "=" and
// quotes around the value).
func envLine(t string) (name, val string, ok bool) {
	i := 0
	for i < len(t) && (t[i] == '_' || t[i] >= 'A' && t[i] <= 'Z' || t[i] >= 'a' && t[i] <= 'z' || i > 0 && t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return "", "", false
	}
	rest := strings.TrimLeft(t[i:], " \t")
	if !strings.HasPrefix(rest, "=") {
		return "", "", false
	}
	val = strings.TrimSpace(rest[1:])
	if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
		val = val[1 : len(val)-1]
	}
	return t[:i], val, true
}

// fields splits off n blank-separated fields and returns the rest.
func fields(t string, n int) ([]string, string) {
	var out []string
	for len(out) < n {
		t = strings.TrimLeft(t, " \t")
		if t == "" {
			return out, ""
		}
		i := strings.IndexAny(t, " \t")
		if i < 0 {
			out, t = append(out, t), ""
			continue
		}
		out, t = append(out, t[:i]), t[i:]
	}
	return out, strings.TrimSpace(t)
}

func cronJob(t string, system bool) (CronEntry, bool) {
	var e CronEntry
	nTime := 5
	if t[0] == '@' {
		nTime = 1
	}
	want := nTime
	if system {
		want++
	}
	f, cmd := fields(t, want)
	if len(f) < want || cmd == "" {
		return e, false
	}
	if nTime == 1 {
		if !cronMacro(f[0]) {
			return e, false
		}
	} else {
		for _, x := range f[:5] {
			if !timeField(x) {
				return e, false
			}
		}
	}
	e.Schedule = strings.Join(f[:nTime], " ")
	if system {
		e.User = f[nTime]
	}
	e.Command = cmd
	return e, true
}

// timeField accepts what the cron implementations accept in a time field:
// numbers, names (jan, mon), and * / , - plus cronie's "~" (random) and
// the L W # ? of some others.
func timeField(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("*/,-~#?", c) >= 0) {
			return false
		}
	}
	return s != ""
}
