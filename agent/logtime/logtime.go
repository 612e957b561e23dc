// Package logtime parses the timestamps that prefix log lines: traditional
// syslog (`Dec 10 06:55:46`, no year), RFC 3339 as written by rsyslog's
// high-precision template (`2026-11-25T10:00:00.123456+00:00`, the Debian 12
// default) and the Common Log Format's `10/Oct/2000:13:55:36 -0700`.
//
// The auth log parser, the web access log parser and the replay command call
// it once per line, so everything here is hand-written digit parsing: no
// regexp, no time.Parse, no allocations. Traditional timestamps lack a year;
// Years infers it from a reference time the caller supplies (file mtime or
// now), so replays of old files get the year the file was written in.
package logtime

import (
	"time"
)

// Stamp is a traditional syslog timestamp before a year is attached.
type Stamp struct {
	Month time.Month
	Day   int
	Hour  int
	Min   int
	Sec   int
	Nsec  int
}

// monthIndex maps the three-letter English month abbreviation (syslog never
// localises it) to its month, 0 if s is not one.
func monthIndex(s string) time.Month {
	if len(s) < 3 {
		return 0
	}
	// Packing the three bytes lets the compiler turn the switch into a
	// jump table instead of twelve string compares.
	switch uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return time.January
	case 'F'<<16 | 'e'<<8 | 'b':
		return time.February
	case 'M'<<16 | 'a'<<8 | 'r':
		return time.March
	case 'A'<<16 | 'p'<<8 | 'r':
		return time.April
	case 'M'<<16 | 'a'<<8 | 'y':
		return time.May
	case 'J'<<16 | 'u'<<8 | 'n':
		return time.June
	case 'J'<<16 | 'u'<<8 | 'l':
		return time.July
	case 'A'<<16 | 'u'<<8 | 'g':
		return time.August
	case 'S'<<16 | 'e'<<8 | 'p':
		return time.September
	case 'O'<<16 | 'c'<<8 | 't':
		return time.October
	case 'N'<<16 | 'o'<<8 | 'v':
		return time.November
	case 'D'<<16 | 'e'<<8 | 'c':
		return time.December
	}
	return 0
}

// digits2 reads exactly two ASCII digits at s[i:i+2].
func digits2(s string, i int) (int, bool) {
	if i+2 > len(s) {
		return 0, false
	}
	a, b := s[i]-'0', s[i+1]-'0'
	if a > 9 || b > 9 {
		return 0, false
	}
	return int(a)*10 + int(b), true
}

// digitsN reads exactly n ASCII digits at s[i:i+n].
func digitsN(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		c -= '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int(c)
	}
	return v, true
}

// fraction reads ".ddd…" at s[i:], returning nanoseconds and the index after
// it. Digits beyond nanosecond precision are consumed and dropped, so an
// over-precise writer does not make the line unparseable.
func fraction(s string, i int) (nsec, end int) {
	if i >= len(s) || (s[i] != '.' && s[i] != ',') {
		return 0, i
	}
	j := i + 1
	scale := 100_000_000
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		nsec += int(s[j]-'0') * scale
		scale /= 10
		j++
	}
	if j == i+1 {
		return 0, i // a lone dot is not a fraction
	}
	return nsec, j
}

// validClock rejects values time.Date would silently normalise into another
// moment; 60 seconds is allowed for leap seconds.
func validClock(h, m, s int) bool {
	return h < 24 && m < 60 && s <= 60
}

// ParseStampPrefix parses a traditional syslog timestamp (`Dec 10 06:55:46`,
// `Jun  4 01:02:03`, also `Jun 04` and an optional fraction such as
// `06:55:46.123`) at the start of line. rest is what follows the timestamp
// and its separating space.
func ParseStampPrefix(line string) (st Stamp, rest string, ok bool) {
	if len(line) < 15 {
		return Stamp{}, "", false
	}
	st.Month = monthIndex(line)
	if st.Month == 0 || line[3] != ' ' {
		return Stamp{}, "", false
	}
	// Day: "10", " 4" (space-padded) or "04".
	var d int
	switch {
	case line[4] == ' ':
		c := line[5] - '0'
		if c > 9 {
			return Stamp{}, "", false
		}
		d = int(c)
	default:
		var good bool
		if d, good = digits2(line, 4); !good {
			return Stamp{}, "", false
		}
	}
	if d < 1 || d > 31 || line[6] != ' ' || line[9] != ':' || line[12] != ':' {
		return Stamp{}, "", false
	}
	st.Day = d
	var g1, g2, g3 bool
	st.Hour, g1 = digits2(line, 7)
	st.Min, g2 = digits2(line, 10)
	st.Sec, g3 = digits2(line, 13)
	if !g1 || !g2 || !g3 || !validClock(st.Hour, st.Min, st.Sec) {
		return Stamp{}, "", false
	}
	var end int
	st.Nsec, end = fraction(line, 15)
	return st, afterSpace(line, end), true
}

// afterSpace returns line[i:] without the one separating space (if any).
func afterSpace(line string, i int) string {
	if i < len(line) && line[i] == ' ' {
		i++
	}
	return line[i:]
}

// ParseRFC3339Prefix parses an RFC 3339 timestamp (`2026-11-25T10:00:00Z`,
// `2026-11-25T10:00:00.123456+00:00`; a space instead of `T` is accepted)
// at the start of line. The result is in UTC: building a fixed zone per line
// would allocate, and only the instant matters downstream.
func ParseRFC3339Prefix(line string) (t time.Time, rest string, ok bool) {
	if len(line) < 20 || line[4] != '-' || line[7] != '-' ||
		(line[10] != 'T' && line[10] != ' ' && line[10] != 't') ||
		line[13] != ':' || line[16] != ':' {
		return time.Time{}, "", false
	}
	y, g0 := digitsN(line, 0, 4)
	mo, g1 := digits2(line, 5)
	d, g2 := digits2(line, 8)
	h, g3 := digits2(line, 11)
	mi, g4 := digits2(line, 14)
	s, g5 := digits2(line, 17)
	if !g0 || !g1 || !g2 || !g3 || !g4 || !g5 || mo < 1 || mo > 12 || d < 1 || d > 31 || !validClock(h, mi, s) {
		return time.Time{}, "", false
	}
	ns, i := fraction(line, 19)
	if i >= len(line) {
		return time.Time{}, "", false
	}
	var off int
	switch line[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		oh, ga := digits2(line, i+1)
		if !ga || i+3 >= len(line) {
			return time.Time{}, "", false
		}
		j := i + 3
		if line[j] == ':' {
			j++
		}
		om, gb := digits2(line, j)
		if !gb || oh > 23 || om > 59 {
			return time.Time{}, "", false
		}
		off = (oh*60 + om) * 60
		if line[i] == '-' {
			off = -off
		}
		i = j + 2
	default:
		return time.Time{}, "", false
	}
	if i < len(line) && line[i] != ' ' {
		return time.Time{}, "", false
	}
	t = time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).Add(-time.Duration(off) * time.Second)
	return t, afterSpace(line, i), true
}

// ParseCLF parses the Common Log Format timestamp `10/Oct/2000:13:55:36
// -0700` (without the brackets) used by nginx's $time_local and Apache's %t.
// The result is in UTC, for the same reason as ParseRFC3339Prefix.
func ParseCLF(s string) (time.Time, bool) {
	if len(s) < 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, false
	}
	d, g1 := digits2(s, 0)
	mo := monthIndex(s[3:6])
	y, g2 := digitsN(s, 7, 4)
	h, g3 := digits2(s, 12)
	mi, g4 := digits2(s, 15)
	sec, g5 := digits2(s, 18)
	if !g1 || !g2 || !g3 || !g4 || !g5 || mo == 0 || d < 1 || d > 31 || !validClock(h, mi, sec) {
		return time.Time{}, false
	}
	if s[21] != '+' && s[21] != '-' {
		return time.Time{}, false
	}
	oh, g6 := digits2(s, 22)
	om, g7 := digits2(s, 24)
	if !g6 || !g7 || len(s) != 26 || om > 59 {
		return time.Time{}, false
	}
	off := (oh*60 + om) * 60
	if s[21] == '-' {
		off = -off
	}
	return time.Date(y, mo, d, h, mi, sec, 0, time.UTC).Add(-time.Duration(off) * time.Second), true
}

// Years attaches years to traditional timestamps read in order from one log
// stream. The first timestamp gets the reference time's year unless that
// would put it more than a month after the reference (a file last written in
// January holding December lines); afterwards a month jumping back by more
// than half a year means the log crossed New Year. Forward jumps are taken
// as gaps in a quiet log, never as the previous year, so a sparse log cannot
// get stuck in the past.
//
// A Years belongs to one stream and is not safe for concurrent use.
type Years struct {
	ref       time.Time
	loc       *time.Location
	year      int
	lastMonth time.Month
}

// slack is how far after the reference time the first line may lie before
// it is taken to be from the previous year; clocks and mtimes disagree a
// little, a month of disagreement means a year boundary.
const slack = 31 * 24 * time.Hour

// NewYears returns a Years for a stream whose reference time (file mtime, or
// now for a live stream) is ref, with timestamps in loc (nil means
// time.Local, which is what syslog daemons write traditional stamps in).
func NewYears(ref time.Time, loc *time.Location) *Years {
	if loc == nil {
		loc = time.Local
	}
	return &Years{ref: ref, loc: loc}
}

// Resolve attaches the inferred year to st and advances the inference state.
func (y *Years) Resolve(st Stamp) time.Time {
	if y.lastMonth == 0 {
		y.year = y.ref.Year()
		t := time.Date(y.year, st.Month, st.Day, st.Hour, st.Min, st.Sec, st.Nsec, y.loc)
		if t.Sub(y.ref) > slack {
			y.year--
			t = time.Date(y.year, st.Month, st.Day, st.Hour, st.Min, st.Sec, st.Nsec, y.loc)
		}
		y.lastMonth = st.Month
		return t
	}
	if st.Month+6 < y.lastMonth {
		y.year++
	}
	y.lastMonth = st.Month
	return time.Date(y.year, st.Month, st.Day, st.Hour, st.Min, st.Sec, st.Nsec, y.loc)
}

// ParsePrefix parses either a traditional or an RFC 3339 timestamp at the
// start of line and returns the time and the rest after one space. RFC 3339
// stamps carry their own year and leave the inference state alone.
func (y *Years) ParsePrefix(line string) (t time.Time, rest string, ok bool) {
	if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
		return ParseRFC3339Prefix(line)
	}
	st, rest, ok := ParseStampPrefix(line)
	if !ok {
		return time.Time{}, "", false
	}
	return y.Resolve(st), rest, true
}
