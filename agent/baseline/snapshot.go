package baseline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/picket-agent/picket/agent/event"
)

// Kinds of baseline documents: each is one file baseline/<kind>.json.
const (
	KindProcess  = "process"
	KindOutbound = "outbound"
	KindListener = "listener"
	KindAuth     = "auth"
	// KindWeb: request rates per log source and per client.
	KindWeb = "web"
	// KindPersistence: persistence entries added while learning.
	KindPersistence = "persistence"
	// KindFiles: path → SHA-256 of watched files (capped, Caps.Files).
	KindFiles = "files"
)

// AllKinds lists the document kinds in a fixed order, for diffs and
// listings.
func AllKinds() []string {
	return []string{KindProcess, KindOutbound, KindListener, KindAuth, KindWeb, KindPersistence, KindFiles}
}

// Seen is how often and when a key was observed (UTC, whole seconds).
type Seen struct {
	Count uint64    `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// ProcessEntry is one (parent exe, exe, user) seen executing.
type ProcessEntry struct {
	Parent string `json:"parent"`
	Exe    string `json:"exe"`
	User   string `json:"user"`
	Seen
}

// OutboundEntry is one destination an executable connected to.
type OutboundEntry struct {
	Exe    string `json:"exe"`
	Prefix string `json:"prefix"` // /24 or /48
	Port   int    `json:"port"`
	Proto  string `json:"proto"` // tcp | udp
	Seen
}

// ListenerEntry is one listening socket of an executable.
type ListenerEntry struct {
	Exe   string `json:"exe"`
	Proto string `json:"proto"`
	Port  int    `json:"port"`
	Seen
}

// LoginEntry is one (user, source prefix, method) of successful logins.
type LoginEntry struct {
	User   string `json:"user"`
	Prefix string `json:"prefix"` // empty for logins without a remote address
	Method string `json:"method"`
	Seen
}

// UserHours is the hour-of-day histogram of one user's logins, in the
// host's local time.
type UserHours struct {
	User  string     `json:"user"`
	Hours [24]uint64 `json:"hours"`
	Seen
}

// AuthDoc is the auth document: logins and per-user hours.
type AuthDoc struct {
	Logins []LoginEntry `json:"logins"`
	Hours  []UserHours  `json:"hours"`
}

// Snapshot is the serialisable form of a Model: every list sorted by key,
// so the same model always yields the same bytes (a git diff of two
// versions shows only what changed).
type Snapshot struct {
	Process  []ProcessEntry  `json:"process"`
	Outbound []OutboundEntry `json:"outbound"`
	Listener []ListenerEntry `json:"listener"`
	Auth     AuthDoc         `json:"auth"`
	Web      WebDoc          `json:"web"`
	Persist  []PersistEntry  `json:"persistence"`
	Files    []FileHash      `json:"files"`
}

func seenOf(s seen) Seen { return Seen{Count: s.count, First: s.first, Last: s.last} }

// Snapshot returns the model's current content.
func (m *Model) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Process: []ProcessEntry{}, Outbound: []OutboundEntry{}, Listener: []ListenerEntry{},
		Auth: AuthDoc{Logins: []LoginEntry{}, Hours: []UserHours{}}, Persist: []PersistEntry{}, Files: []FileHash{}}
	for _, k := range m.procs.keys() {
		s.Process = append(s.Process, ProcessEntry{Parent: k.parent, Exe: k.exe, User: k.user, Seen: seenOf(m.procs.m[k].seen)})
	}
	for _, k := range m.out.keys() {
		s.Outbound = append(s.Outbound, OutboundEntry{Exe: k.exe, Prefix: prefixString(k.prefix), Port: k.port, Proto: k.proto,
			Seen: seenOf(m.out.m[k].seen)})
	}
	for _, k := range m.listen.keys() {
		s.Listener = append(s.Listener, ListenerEntry{Exe: k.exe, Proto: k.proto, Port: k.port, Seen: seenOf(m.listen.m[k].seen)})
	}
	for _, k := range m.logins.keys() {
		s.Auth.Logins = append(s.Auth.Logins, LoginEntry{User: k.user, Prefix: prefixString(k.prefix), Method: k.method,
			Seen: seenOf(m.logins.m[k].seen)})
	}
	for _, k := range m.hours.keys() {
		sl := m.hours.m[k]
		s.Auth.Hours = append(s.Auth.Hours, UserHours{User: string(k), Hours: sl.v, Seen: seenOf(sl.seen)})
	}
	s.Web = WebDoc{Sources: webRates(m.webSrc, m.loc), Clients: webRates(m.webCli, m.loc)}
	for _, k := range m.pers.keys() {
		s.Persist = append(s.Persist, PersistEntry{What: k.what, Path: k.path, Entry: k.entry, Seen: seenOf(m.pers.m[k].seen)})
	}
	for _, k := range m.files.keys() {
		sl := m.files.m[k]
		s.Files = append(s.Files, FileHash{Path: string(k), SHA256: sl.v, Seen: seenOf(sl.seen)})
	}
	return s
}

// Kinds renders one JSON document per kind, indented and newline-terminated
// for baseline/<kind>.json. Deterministic for a given snapshot.
func (s Snapshot) Kinds() map[string]json.RawMessage {
	docs := map[string]any{KindProcess: orEmpty(s.Process), KindOutbound: orEmpty(s.Outbound),
		KindListener: orEmpty(s.Listener), KindAuth: AuthDoc{Logins: orEmpty(s.Auth.Logins), Hours: orEmpty(s.Auth.Hours)},
		KindWeb:         WebDoc{Sources: orEmpty(s.Web.Sources), Clients: orEmpty(s.Web.Clients)},
		KindPersistence: orEmpty(s.Persist), KindFiles: orEmpty(s.Files)}
	out := make(map[string]json.RawMessage, len(docs))
	for k, d := range docs {
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			// Only out-of-range times can fail, and Learn and
			// FromSnapshot never store them; keep the kind present so a
			// caller writing files still writes a valid (empty) one.
			b = []byte("null")
		}
		out[k] = append(b, '\n')
	}
	return out
}

// orEmpty makes nil lists encode as [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ParseKinds decodes documents as written by Kinds. Missing kinds are
// empty (a version promoted before a kind existed has none); unknown kinds
// are ignored so a newer agent's files do not stop an older one from
// reading the rest.
func ParseKinds(docs map[string]json.RawMessage) (Snapshot, error) {
	var s Snapshot
	dec := func(kind string, v any) error {
		raw, ok := docs[kind]
		if !ok {
			return nil
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("baseline %s: %w", kind, err)
		}
		return nil
	}
	if err := dec(KindProcess, &s.Process); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindOutbound, &s.Outbound); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindListener, &s.Listener); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindAuth, &s.Auth); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindWeb, &s.Web); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindPersistence, &s.Persist); err != nil {
		return Snapshot{}, err
	}
	if err := dec(KindFiles, &s.Files); err != nil {
		return Snapshot{}, err
	}
	return s, nil
}

// FromSnapshot rebuilds a model bounded by c. It validates what the files
// could have been edited to say (a baseline is reviewed in git and may be
// hand-edited): invalid prefixes, ports, text or times are errors, not
// silently dropped keys. Duplicate keys are merged; keys beyond the cap are
// evicted as in learning. Hours are read in time.Local.
func FromSnapshot(s Snapshot, c Caps) (*Model, error) { return FromSnapshotIn(s, c, nil) }

// FromSnapshotIn is FromSnapshot for a model reading hours in loc.
func FromSnapshotIn(s Snapshot, c Caps, loc *time.Location) (*Model, error) {
	m := NewModelIn(c, loc)
	for i, e := range s.Process {
		if err := validText(e.Parent, e.Exe, e.User); err != nil || e.Exe == "" {
			return nil, fmt.Errorf("baseline process entry %d: invalid key", i)
		}
		if err := restore(m.procs, procKey{e.Parent, e.Exe, e.User}, e.Seen); err != nil {
			return nil, fmt.Errorf("baseline process entry %d: %w", i, err)
		}
	}
	for i, e := range s.Outbound {
		p, err := parsePrefix(e.Prefix)
		if err == nil {
			err = validPort(e.Port)
		}
		if err == nil {
			err = validText(e.Exe, e.Proto)
		}
		if err == nil {
			err = restore(m.out, outKey{e.Exe, p, e.Port, e.Proto}, e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline outbound entry %d: %w", i, err)
		}
	}
	for i, e := range s.Listener {
		err := validPort(e.Port)
		if err == nil {
			err = validText(e.Exe, e.Proto)
		}
		if err == nil {
			err = restore(m.listen, listenKey{e.Exe, e.Proto, e.Port}, e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline listener entry %d: %w", i, err)
		}
	}
	for i, e := range s.Auth.Logins {
		p, err := parsePrefix(e.Prefix)
		if err == nil {
			err = validText(e.User, e.Method)
		}
		if err == nil && e.User == "" {
			err = fmt.Errorf("empty user")
		}
		if err == nil {
			err = restore(m.logins, loginKey{e.User, p, e.Method}, e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline auth login %d: %w", i, err)
		}
	}
	for i, e := range s.Auth.Hours {
		err := validText(e.User)
		if err == nil && e.User == "" {
			err = fmt.Errorf("empty user")
		}
		if err == nil {
			err = restore(m.hours, userKey(e.User), e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline auth hours %d: %w", i, err)
		}
		sl := m.hours.m[userKey(e.User)]
		for h, n := range e.Hours {
			sl.v[h] += n
		}
	}
	if err := restoreRates(m.webSrc, s.Web.Sources); err != nil {
		return nil, fmt.Errorf("baseline web sources: %w", err)
	}
	if err := restoreRates(m.webCli, s.Web.Clients); err != nil {
		return nil, fmt.Errorf("baseline web clients: %w", err)
	}
	for i, e := range s.Persist {
		err := validText(e.What, e.Path, e.Entry)
		if err == nil && (e.What == "" || e.Entry == "" || len(e.Entry) > maxEntryLen) {
			err = errInvalidKey
		}
		if err == nil {
			err = restore(m.pers, persistKey{e.What, e.Path, e.Entry}, e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline persistence entry %d: %w", i, err)
		}
	}
	for i, e := range s.Files {
		_, _, ok := fileHashOf(&event.Event{Change: &event.Change{What: whatFileChanged, Path: e.Path, After: hashPrefix + e.SHA256}})
		err := validText(e.Path)
		if err == nil && !ok {
			err = errInvalidKey
		}
		if err == nil {
			err = restore(m.files, strKey(e.Path), e.Seen)
		}
		if err != nil {
			return nil, fmt.Errorf("baseline files entry %d: %w", i, err)
		}
		m.files.m[strKey(e.Path)].v = e.SHA256
	}
	return m, nil
}

// restore merges one stored key into t.
func restore[K interface {
	comparable
	cmp(K) int
}, V any](t *table[K, V], k K, s Seen) error {
	first, last := cleanTime(s.First), cleanTime(s.Last)
	if !first.Equal(s.First) || !last.Equal(s.Last) {
		return fmt.Errorf("time not in whole UTC seconds within years 1-9999")
	}
	sl := t.touch(k, first, 0)
	if last.After(sl.last) {
		sl.last = last
	}
	sl.count += s.Count
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if want := prefixOf(p.Addr()); p != want {
		return netip.Prefix{}, fmt.Errorf("prefix %s is not a /24 or /48 network", s)
	}
	return p, nil
}

func validPort(p int) error {
	if p < 0 || p > 65535 {
		return fmt.Errorf("port %d out of range", p)
	}
	return nil
}

func validText(ss ...string) error {
	if slices.ContainsFunc(ss, func(s string) bool { return !utf8.ValidString(s) }) {
		return fmt.Errorf("invalid UTF-8")
	}
	return nil
}
