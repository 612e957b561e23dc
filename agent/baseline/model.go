// Package baseline is the agent's memory of normal: what processes run under
// which parents, where each executable connects, what listens, who logs in
// from where, how and when, the request rates and error shares of each web
// log source and client by hour of day, the persistence entries deploys and
// updates add, and the content hashes of watched files. The agent learns a
// Model read-only during the learning period (or alongside detection
// during a relearn), promotes it to a numbered Version (persisted as
// baseline/<kind>.json on the host branch, so `git log -p baseline/` shows
// what changed), and then runs the Deviations detector, which reports what
// the promoted baseline has never seen. The pipeline feeds Learn and
// Deviations.Observe; `picket baseline status|show|diff|relearn` reads
// Versions.
//
// Every part of the model is bounded: an attacker (or a busy host) churning
// through millions of distinct keys costs a fixed amount of memory, and the
// keys evicted first are the rarest and, among equally rare ones, the least
// recently seen, so what the host does routinely survives the churn.
//
// Hours of the day (logins, request rates) are the host's local time
// (Config.Loc / NewModelIn), because people and traffic follow the local
// clock; a model and its detector must use the same zone.
//
// Not yet modelled: the container image of a process.
package baseline

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/picket-agent/picket/agent/event"
)

// Caps bounds each part of the model (number of distinct keys). Zero fields
// take the DefaultCaps value.
type Caps struct {
	Processes int // (parent exe, exe, user)
	Outbound  int // (exe, destination prefix, port, proto)
	Listeners int // (exe, proto, port)
	Logins    int // (user, source prefix, method)
	Users     int // per-user hour-of-day histograms
	// WebSources and WebClients: request-rate models per log source and
	// per client address.
	WebSources int
	WebClients int
	// Persist: (what, path, entry) persistence entries.
	Persist int
	// Files: path → SHA-256 of watched files. This is a digest, not a
	// copy of the file integrity state (which lives in SQLite, unbounded):
	// past the cap the files changed least often, then longest ago, are
	// forgotten first, and a forgotten file only loses the "known
	// content" exemption of the file_changed rule.
	Files int
}

// DefaultCaps sizes the model for a busy server while keeping 100,000 keys
// well under the memory budget of the issue (30 MB).
func DefaultCaps() Caps {
	return Caps{Processes: 20000, Outbound: 50000, Listeners: 2000, Logins: 20000, Users: 5000,
		WebSources: 200, WebClients: 20000, Persist: 20000, Files: 50000}
}

func (c Caps) orDefault() Caps {
	d := DefaultCaps()
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	return Caps{Processes: pick(c.Processes, d.Processes), Outbound: pick(c.Outbound, d.Outbound),
		Listeners: pick(c.Listeners, d.Listeners), Logins: pick(c.Logins, d.Logins), Users: pick(c.Users, d.Users),
		WebSources: pick(c.WebSources, d.WebSources), WebClients: pick(c.WebClients, d.WebClients),
		Persist: pick(c.Persist, d.Persist), Files: pick(c.Files, d.Files)}
}

// Model is what normal looks like on this host. It is safe for concurrent
// use: the pipeline learns while `picket status` may snapshot it.
type Model struct {
	mu     sync.Mutex
	procs  *table[procKey, struct{}]
	out    *table[outKey, struct{}]
	listen *table[listenKey, struct{}]
	logins *table[loginKey, struct{}]
	hours  *table[userKey, [24]uint64]
	webSrc *table[strKey, rateStat]
	webCli *table[strKey, rateStat]
	pers   *table[persistKey, struct{}]
	files  *table[strKey, string]
	loc    *time.Location
}

// NewModel returns an empty model bounded by c that reads hours of the
// day in time.Local.
func NewModel(c Caps) *Model { return NewModelIn(c, nil) }

// NewModelIn returns an empty model bounded by c that reads hours of the
// day in loc (nil: time.Local).
func NewModelIn(c Caps, loc *time.Location) *Model {
	c = c.orDefault()
	if loc == nil {
		loc = time.Local
	}
	return &Model{
		procs:  newTable[procKey, struct{}](c.Processes),
		out:    newTable[outKey, struct{}](c.Outbound),
		listen: newTable[listenKey, struct{}](c.Listeners),
		logins: newTable[loginKey, struct{}](c.Logins),
		hours:  newTable[userKey, [24]uint64](c.Users),
		webSrc: newTable[strKey, rateStat](c.WebSources),
		webCli: newTable[strKey, rateStat](c.WebClients),
		pers:   newTable[persistKey, struct{}](c.Persist),
		files:  newTable[strKey, string](c.Files),
		loc:    loc,
	}
}

// Learn adds one event to the model. Kinds the model does not cover are
// ignored, so the pipeline can feed it everything.
func (m *Model) Learn(ev *event.Event) {
	at := cleanTime(ev.Time)
	n := uint64(ev.N())
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case event.ProcExec:
		if k, ok := procKeyOf(ev); ok {
			m.procs.touch(k, at, n)
		}
	case event.NetConnect:
		if k, ok := outKeyOf(ev); ok {
			m.out.touch(k, at, n)
		}
	case event.NetListen:
		if k, ok := listenKeyOf(ev); ok {
			m.listen.touch(k, at, n)
		}
	case event.AuthSuccess:
		if k, ok := loginKeyOf(ev); ok {
			m.logins.touch(k, at, n)
			s := m.hours.touch(userKey(k.user), at, n)
			s.v[at.In(m.loc).Hour()] += n
		}
	case event.WebRequest:
		src := m.webSrc.touch(strKey(webSourceOf(ev)), at, n)
		src.v.add(at, m.loc, n, ev.Status)
		if ev.Addr.IsValid() {
			cli := m.webCli.touch(strKey(ev.Addr.Unmap().WithZone("").String()), at, n)
			cli.v.add(at, m.loc, n, ev.Status)
		}
	case event.PersistChanged:
		for _, k := range persistKeysOf(ev) {
			m.pers.touch(k, at, n)
		}
	case event.FileChanged:
		if p, h, ok := fileHashOf(ev); ok {
			m.files.touch(strKey(p), at, n).v = h
		}
	}
}

// Len returns the number of keys per kind, for `picket status`.
func (m *Model) Len() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]int{KindProcess: len(m.procs.m), KindOutbound: len(m.out.m),
		KindListener: len(m.listen.m), KindAuth: len(m.logins.m), KindWeb: len(m.webSrc.m) + len(m.webCli.m),
		KindPersistence: len(m.pers.m), KindFiles: len(m.files.m)}
}

// cleanTime makes times comparable and serialisable: UTC, whole seconds, no
// monotonic reading, and within the years JSON can encode (a garbled log
// timestamp must not make the baseline unwritable).
func cleanTime(t time.Time) time.Time {
	t = t.Round(0).UTC().Truncate(time.Second)
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}
	}
	return t
}

// clean keeps keys valid UTF-8, so they survive the JSON round trip
// unchanged (encoding/json would silently rewrite invalid bytes).
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// normProto folds tcp6/udp6 into tcp/udp: the address family is already in
// the prefix.
func normProto(p string) string {
	return clean(strings.TrimSuffix(p, "6"))
}

// prefixOf is the /24 (IPv4) or /48 (IPv6) around a: one hosting provider's
// block or one site, coarse enough that a service's address rotation inside
// it is not news.
func prefixOf(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// exeOf names a process by executable, falling back to "[comm]" when the
// executable could not be read (the process exited first), as ps does.
func exeOf(exe, comm string) string {
	if exe != "" {
		return clean(exe)
	}
	if comm != "" {
		return "[" + clean(comm) + "]"
	}
	return ""
}

func userOf(p *event.Process) string {
	if p.User != "" {
		return clean(p.User)
	}
	return "uid:" + strconv.Itoa(p.UID)
}

type procKey struct{ parent, exe, user string }

func (a procKey) cmp(b procKey) int {
	return cmp.Or(strings.Compare(a.parent, b.parent), strings.Compare(a.exe, b.exe), strings.Compare(a.user, b.user))
}

func procKeyOf(ev *event.Event) (procKey, bool) {
	p := ev.Proc
	if p == nil {
		return procKey{}, false
	}
	k := procKey{exe: exeOf(p.Exe, p.Comm), user: userOf(p)}
	if len(p.Lineage) > 0 {
		k.parent = exeOf(p.Lineage[0].Exe, p.Lineage[0].Comm)
	}
	return k, k.exe != ""
}

type outKey struct {
	exe    string
	prefix netip.Prefix
	port   int
	proto  string
}

func (a outKey) cmp(b outKey) int {
	return cmp.Or(strings.Compare(a.exe, b.exe), a.prefix.Compare(b.prefix), cmp.Compare(a.port, b.port), strings.Compare(a.proto, b.proto))
}

func outKeyOf(ev *event.Event) (outKey, bool) {
	if ev.Net == nil || !ev.Net.Remote.IsValid() {
		return outKey{}, false
	}
	k := outKey{prefix: prefixOf(ev.Net.Remote), port: ev.Net.RPort, proto: normProto(ev.Net.Proto)}
	if ev.Proc != nil {
		k.exe = exeOf(ev.Proc.Exe, ev.Proc.Comm)
	}
	return k, true
}

type listenKey struct {
	exe, proto string
	port       int
}

func (a listenKey) cmp(b listenKey) int {
	return cmp.Or(strings.Compare(a.exe, b.exe), strings.Compare(a.proto, b.proto), cmp.Compare(a.port, b.port))
}

func listenKeyOf(ev *event.Event) (listenKey, bool) {
	if ev.Net == nil {
		return listenKey{}, false
	}
	k := listenKey{proto: normProto(ev.Net.Proto), port: ev.Net.LPort}
	if ev.Proc != nil {
		k.exe = exeOf(ev.Proc.Exe, ev.Proc.Comm)
	}
	return k, true
}

type loginKey struct {
	user   string
	prefix netip.Prefix
	method string
}

func (a loginKey) cmp(b loginKey) int {
	return cmp.Or(strings.Compare(a.user, b.user), a.prefix.Compare(b.prefix), strings.Compare(a.method, b.method))
}

func loginKeyOf(ev *event.Event) (loginKey, bool) {
	k := loginKey{user: clean(ev.User), prefix: prefixOf(ev.Addr), method: clean(ev.Method)}
	return k, k.user != ""
}

type userKey string

func (a userKey) cmp(b userKey) int { return strings.Compare(string(a), string(b)) }

// seen is how often and when a key was observed.
type seen struct {
	count       uint64
	first, last time.Time
}

type slot[V any] struct {
	seen
	seq uint64 // insertion order: the cheap, deterministic last tie-break
	v   V
}

// table is a bounded map of keys to their counts. Eviction works in batches
// (down to three quarters of the cap) so its sort is amortised over many
// inserts, and it is deterministic: count, then last seen, then insertion
// order (the same events always evict the same keys).
type table[K interface {
	comparable
	cmp(K) int
}, V any] struct {
	cap     int
	m       map[K]*slot[V]
	seq     uint64
	evicted uint64
}

func newTable[K interface {
	comparable
	cmp(K) int
}, V any](capacity int) *table[K, V] {
	return &table[K, V]{cap: max(capacity, 1), m: make(map[K]*slot[V])}
}

// touch records n observations of k at time at and returns its slot.
func (t *table[K, V]) touch(k K, at time.Time, n uint64) *slot[V] {
	s := t.m[k]
	if s == nil {
		// Evict before inserting, so the key being learnt always survives.
		if len(t.m) >= t.cap {
			t.evict()
		}
		t.seq++
		s = &slot[V]{seen: seen{first: at, last: at}, seq: t.seq}
		t.m[k] = s
	}
	s.count += n
	if at.Before(s.first) {
		s.first = at
	}
	if at.After(s.last) {
		s.last = at
	}
	return s
}

// evict drops the rarest, then oldest, keys until a quarter of the cap is
// free.
func (t *table[K, V]) evict() {
	target := t.cap - max(1, t.cap/4)
	if len(t.m) <= target {
		return
	}
	type entry struct {
		k K
		s *slot[V]
	}
	es := make([]entry, 0, len(t.m))
	for k, s := range t.m {
		es = append(es, entry{k, s})
	}
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.s.count, b.s.count), a.s.last.Compare(b.s.last), cmp.Compare(a.s.seq, b.s.seq))
	})
	for _, e := range es[:len(es)-target] {
		delete(t.m, e.k)
		t.evicted++
	}
}

func (t *table[K, V]) sorted(f func(a, b K) int) []K {
	keys := make([]K, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, f)
	return keys
}

func (t *table[K, V]) keys() []K {
	return t.sorted(func(a, b K) int { return a.cmp(b) })
}

// Evicted returns how many keys each kind has dropped to stay under its
// cap, for `picket status`: a high number means the cap is too small for
// this host, or something is churning keys on purpose.
func (m *Model) Evicted() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]uint64{KindProcess: m.procs.evicted, KindOutbound: m.out.evicted,
		KindListener: m.listen.evicted, KindAuth: m.logins.evicted + m.hours.evicted,
		KindWeb: m.webSrc.evicted + m.webCli.evicted, KindPersistence: m.pers.evicted, KindFiles: m.files.evicted}
}
