package baseline

// Drift learning: after the first promotion, what the deviation rules keep
// reporting as new on several distinct days is folded into the baseline,
// and the agent promotes the result as a new version (reason "drift"). It
// is off by default: an attacker who stays quiet long enough, doing the
// same thing once a day, would otherwise teach the baseline their habits.
//
// Drift only counts and decides; the agent (agent/drift.go) attaches it to
// the Deviations detector, gives it the open incidents, and promotes.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// Defaults of the learning.drift block, and the candidate cap.
const (
	DefaultDriftMinDays = 3
	DefaultDriftEvery   = 24 * time.Hour
	// DefaultDriftCap bounds the candidate keys. On a host whose baseline
	// fits, few keys are reported as new; the cap is for floods, where
	// the keys seen on the fewest days are evicted first (a flood of
	// one-day keys cannot push out a key already seen on two days).
	DefaultDriftCap = 5000
	// driftStaleDays: a gap this long between two reports of a key starts
	// its count over. Three days spread over two months are no habit.
	driftStaleDays = 14
)

// DriftConfig is the learning.drift block, plus the cap and the zone that
// decides what a day is. Zero fields take the defaults.
type DriftConfig struct {
	Enabled bool
	// MinDays is the number of distinct days (host local time) a key must
	// be reported on before it is folded in.
	MinDays int
	// Every is the shortest time between two drift promotions.
	Every time.Duration
	// Cap bounds the candidate keys (pending additions included).
	Cap int
	// Loc is the host's time zone (nil: time.Local): days are local days,
	// and login hours are read in it as the detector reads them.
	Loc *time.Location
}

// DriftConfigFromPolicy reads learning.drift.
func DriftConfigFromPolicy(p *schema.Policy) DriftConfig {
	d := p.Learning.Drift
	return DriftConfig{Enabled: d.Enabled, MinDays: d.MinDays, Every: d.Every.D()}.orDefault()
}

func (c DriftConfig) orDefault() DriftConfig {
	if c.MinDays < 2 {
		c.MinDays = DefaultDriftMinDays
	}
	if c.Every <= 0 {
		c.Every = DefaultDriftEvery
	}
	if c.Cap <= 0 {
		c.Cap = DefaultDriftCap
	}
	if c.Loc == nil {
		c.Loc = time.Local
	}
	return c
}

// Kinds of drift keys: which part of the model a key folds into.
const (
	DriftProcess     = "process"
	DriftOutbound    = "outbound"
	DriftListener    = "listener"
	DriftLogin       = "login"      // user, source prefix, method
	DriftLoginHour   = "login_hour" // user, hour of the day
	DriftPersistence = "persistence"
	DriftFile        = "file"
	DriftWebSource   = "web_source" // a log source's peak at an hour
	DriftWebClient   = "web_client" // a client's peak at an hour
)

// DriftKey is one key a deviation rule reported as new. Kind says which
// other fields are set; the rest are empty. It is comparable: the
// candidates are a map keyed by it.
type DriftKey struct {
	Kind   string `json:"kind"`
	Parent string `json:"parent,omitempty"`
	Exe    string `json:"exe,omitempty"`
	User   string `json:"user,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Port   int    `json:"port,omitempty"`
	Proto  string `json:"proto,omitempty"`
	Method string `json:"method,omitempty"`
	Hour   int    `json:"hour,omitempty"`
	What   string `json:"what,omitempty"`
	Path   string `json:"path,omitempty"`
	Entry  string `json:"entry,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Web    string `json:"web,omitempty"` // the log source or client address
}

func procDrift(k procKey) DriftKey {
	return DriftKey{Kind: DriftProcess, Parent: k.parent, Exe: k.exe, User: k.user}
}

func outDrift(k outKey) DriftKey {
	return DriftKey{Kind: DriftOutbound, Exe: k.exe, Prefix: prefixString(k.prefix), Port: k.port, Proto: k.proto}
}

func listenDrift(k listenKey) DriftKey {
	return DriftKey{Kind: DriftListener, Exe: k.exe, Port: k.port, Proto: k.proto}
}

func loginDrift(k loginKey) DriftKey {
	return DriftKey{Kind: DriftLogin, User: k.user, Prefix: prefixString(k.prefix), Method: k.method}
}

func hourDrift(user string, hour int) DriftKey {
	return DriftKey{Kind: DriftLoginHour, User: user, Hour: hour}
}

func persistDrift(k persistKey) DriftKey {
	return DriftKey{Kind: DriftPersistence, What: k.what, Path: k.path, Entry: k.entry}
}

func fileDrift(path, sha string) DriftKey { return DriftKey{Kind: DriftFile, Path: path, SHA256: sha} }

// DriftCandidate is one candidate key with its counts, as persisted and
// listed.
type DriftCandidate struct {
	DriftKey
	// Days is the number of distinct local days the key was reported on,
	// LastDay the last of them (YYYY-MM-DD).
	Days    int    `json:"days"`
	LastDay string `json:"last_day"`
	// Peak is the highest per-minute count of a web spike.
	Peak uint32 `json:"peak,omitempty"`
	// Entities are those of the key's last report (process ids left
	// out: they change every time), for the open-incident check.
	Entities []signal.Entity `json:"entities,omitempty"`
	Seen
}

// String is the line a drift promotion lists, in the form of `picket
// baseline diff`: "process: /usr/sbin/cron → /usr/local/bin/backup as
// root (3 days)".
func (c DriftCandidate) String() string {
	k := c.DriftKey
	var s string
	switch k.Kind {
	case DriftProcess:
		s = fmt.Sprintf("%s: %s → %s as %s", KindProcess, orUnknown(k.Parent), k.Exe, k.User)
	case DriftOutbound:
		s = fmt.Sprintf("%s: %s → %s port %d/%s", KindOutbound, orUnknown(k.Exe), orUnknown(k.Prefix), k.Port, k.Proto)
	case DriftListener:
		s = fmt.Sprintf("%s: %s listens on %d/%s", KindListener, orUnknown(k.Exe), k.Port, k.Proto)
	case DriftLogin:
		s = fmt.Sprintf("%s: %s from %s by %s", KindAuth, k.User, orLocal(k.Prefix), orUnknown(k.Method))
	case DriftLoginHour:
		s = fmt.Sprintf("%s: %s at %02dh", KindAuth, k.User, k.Hour)
	case DriftPersistence:
		s = fmt.Sprintf("%s: %s %s: %s", KindPersistence, k.What, orUnknown(k.Path), k.Entry)
	case DriftFile:
		s = fmt.Sprintf("%s: %s sha256:%s", KindFiles, k.Path, k.SHA256)
	case DriftWebSource, DriftWebClient:
		s = fmt.Sprintf("%s: %s %s peak %d/min at %02dh", KindWeb, strings.TrimPrefix(k.Kind, "web_"), k.Web, c.Peak, k.Hour)
	default:
		s = k.Kind + ": ?"
	}
	return fmt.Sprintf("%s (%d days)", s, c.Days)
}

// cand is one candidate in memory.
type cand struct {
	seen
	days    int
	lastDay int64 // days since 1970-01-01, local calendar
	seq     uint64
	peak    uint32
	ents    []signal.Entity
}

// Drift counts, for each key the deviation rules report as new, the
// distinct days it was reported on; folds the keys seen on enough days
// that no open incident involves; and holds them until the agent promotes
// them. It is safe for concurrent use, though the agent drives it from
// one goroutine.
type Drift struct {
	mu      sync.Mutex
	c       DriftConfig
	active  bool
	version int
	next    time.Time
	cands   map[DriftKey]*cand
	pending map[DriftKey]*cand
	seq     uint64
	evicted uint64
	// dirty: something changed since the last save; newDay: a day count
	// changed, which a restart must not lose.
	dirty, newDay bool
}

// NewDrift returns an empty, inactive drift learner.
func NewDrift(c DriftConfig) *Drift {
	return &Drift{c: c.orDefault(), cands: map[DriftKey]*cand{}, pending: map[DriftKey]*cand{}}
}

// SetConfig applies a new configuration (a policy reload). A smaller cap
// takes effect at the next insertion.
func (d *Drift) SetConfig(c DriftConfig) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.c = c.orDefault()
}

// SetActive turns recording on or off. The agent keeps it off while drift
// is disabled, during the learning period and during a relearn.
func (d *Drift) SetActive(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = on
}

// Version returns the baseline version the counts refer to.
func (d *Drift) Version() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Reset drops every candidate and pending key: the counts now refer to
// version v, promoted at at, and the first drift promotion may follow at
// at + Every.
func (d *Drift) Reset(v int, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.cands)
	clear(d.pending)
	d.version, d.next = v, at.Add(d.c.Every).UTC()
	d.dirty, d.newDay = true, true
}

// Len returns the number of candidates and of pending additions.
func (d *Drift) Len() (candidates, pending int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cands), len(d.pending)
}

// dayOf numbers t's local calendar day.
func dayOf(t time.Time, loc *time.Location) int64 {
	y, m, dd := t.In(loc).Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func dayString(day int64) string { return time.Unix(day*86400, 0).UTC().Format(time.DateOnly) }

// note records one report of k. n is the occurrences it stands for (0:
// a peak update of a report already counted), peak a web spike's
// per-minute count, ents the report's entities.
func (d *Drift) note(k DriftKey, at time.Time, n uint64, peak uint32, ents []signal.Entity) {
	at = cleanTime(at)
	if at.IsZero() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active {
		return
	}
	if _, ok := d.pending[k]; ok {
		return // decided; the detector reports it until the promotion
	}
	c := d.cands[k]
	if c == nil {
		if n == 0 {
			return
		}
		if len(d.cands)+len(d.pending) >= d.c.Cap {
			d.evict()
			if len(d.cands)+len(d.pending) >= d.c.Cap {
				d.evicted++
				return
			}
		}
		d.seq++
		c = &cand{seen: seen{first: at, last: at}, seq: d.seq}
		d.cands[k] = c
	}
	day := dayOf(at, d.c.Loc)
	if c.days > 0 && day-c.lastDay > driftStaleDays {
		// A long gap: the count starts over.
		c.seen, c.days, c.peak = seen{first: at, last: at}, 0, 0
	}
	if c.days == 0 || day > c.lastDay {
		c.days++
		c.lastDay = day
		d.newDay = true
	}
	c.count += n
	if at.Before(c.first) {
		c.first = at
	}
	if at.After(c.last) {
		c.last = at
	}
	c.peak = max(c.peak, peak)
	if n > 0 {
		c.ents = withoutPIDs(ents)
	}
	d.dirty = true
}

// withoutPIDs copies the entities other than process ids.
func withoutPIDs(ents []signal.Entity) []signal.Entity {
	var out []signal.Entity
	for _, e := range ents {
		if e.Kind != signal.Process {
			out = append(out, e)
		}
	}
	return out
}

// evict drops the candidates seen on the fewest days, then longest ago,
// until a quarter of the cap is free (pending keys are decided and stay).
func (d *Drift) evict() {
	target := max(0, d.c.Cap-max(1, d.c.Cap/4)-len(d.pending))
	if len(d.cands) <= target {
		return
	}
	type entry struct {
		k DriftKey
		c *cand
	}
	es := make([]entry, 0, len(d.cands))
	for k, c := range d.cands {
		es = append(es, entry{k, c})
	}
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.c.days, b.c.days), a.c.last.Compare(b.c.last), cmp.Compare(a.c.seq, b.c.seq))
	})
	for _, e := range es[:len(es)-target] {
		delete(d.cands, e.k)
		d.evicted++
	}
	d.dirty, d.newDay = true, true
}

// Fold moves the candidates reported on at least MinDays distinct days
// into the pending additions, unless an open incident involves them, and
// returns what it moved. It also forgets candidates not reported for
// longer than the stale gap.
//
// An incident involves a candidate when it names one of the candidate's
// entities: its executable (as a process or an ancestor of one in the
// evidence), its user, an address in its prefix, its file, its container.
// The candidate's own reports, and those of other candidates, are what
// drift is there to absorb and so do not count, as long as the incident
// holds nothing else, stayed at observe and was not contained: a finding
// of any other rule, or an incident the responder acts on, holds every
// entity it names back until it closes.
func (d *Drift) Fold(now time.Time, open []*correlate.Incident) []DriftCandidate {
	d.mu.Lock()
	defer d.mu.Unlock()
	today := dayOf(now, d.c.Loc)
	var ready []DriftKey
	for k, c := range d.cands {
		switch {
		case today-c.lastDay > driftStaleDays:
			delete(d.cands, k)
			d.dirty, d.newDay = true, true
		case c.days >= d.c.MinDays:
			ready = append(ready, k)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	b := newInvolved()
	for _, in := range open {
		if in.Status != correlate.Closed && !d.absorbable(in) {
			b.add(in)
		}
	}
	var out []DriftCandidate
	for _, k := range ready {
		c := d.cands[k]
		if b.involves(k, c) {
			continue
		}
		delete(d.cands, k)
		d.pending[k] = c
		out = append(out, candidateOf(k, c))
	}
	if len(out) > 0 {
		d.dirty, d.newDay = true, true
	}
	sortCandidates(out)
	return out
}

// Due reports whether a drift version is to be promoted at now: the next
// promotion time has come and something is pending. When the time comes
// with nothing pending, the next one moves on by Every, so drift versions
// keep their time of day.
func (d *Drift) Due(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.next.IsZero() {
		d.next = now.UTC() // a state saved without one: from now on
	}
	if now.Before(d.next) {
		return false
	}
	if len(d.pending) > 0 {
		return true
	}
	steps := now.Sub(d.next)/d.c.Every + 1
	d.next = d.next.Add(steps * d.c.Every).UTC()
	d.dirty = true
	return false
}

// Apply folds the pending additions into m (a copy of the current
// version's model) and returns them, in order.
func (d *Drift) Apply(m *Model) []DriftCandidate {
	d.mu.Lock()
	defer d.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []DriftCandidate
	for k, c := range d.pending {
		out = append(out, candidateOf(k, c))
	}
	sortCandidates(out)
	for _, dc := range out {
		foldInto(m, dc)
	}
	return out
}

// foldInto adds one candidate to m, counts and times included.
func foldInto(m *Model, c DriftCandidate) {
	k := c.DriftKey
	at, n := c.First, c.Count
	last := func(s *seen) {
		if c.Last.After(s.last) {
			s.last = c.Last
		}
	}
	switch k.Kind {
	case DriftProcess:
		last(&m.procs.touch(procKey{k.Parent, k.Exe, k.User}, at, n).seen)
	case DriftOutbound:
		if p, err := parsePrefix(k.Prefix); err == nil {
			last(&m.out.touch(outKey{k.Exe, p, k.Port, k.Proto}, at, n).seen)
		}
	case DriftListener:
		last(&m.listen.touch(listenKey{k.Exe, k.Proto, k.Port}, at, n).seen)
	case DriftLogin:
		if p, err := parsePrefix(k.Prefix); err == nil {
			last(&m.logins.touch(loginKey{k.User, p, k.Method}, at, n).seen)
		}
	case DriftLoginHour:
		s := m.hours.touch(userKey(k.User), at, n)
		s.v[k.Hour] += n
		last(&s.seen)
	case DriftPersistence:
		last(&m.pers.touch(persistKey{k.What, k.Path, k.Entry}, at, n).seen)
	case DriftFile:
		s := m.files.touch(strKey(k.Path), at, n)
		s.v = k.SHA256
		last(&s.seen)
	case DriftWebSource, DriftWebClient:
		t := m.webSrc
		if k.Kind == DriftWebClient {
			t = m.webCli
		}
		s := t.touch(strKey(k.Web), at, n)
		s.v.peaks[k.Hour] = max(s.v.peaks[k.Hour], c.Peak)
		last(&s.seen)
	}
}

// Promoted records that the pending additions became version v at at:
// they are dropped, the counts now refer to v, and the next drift
// promotion may follow at at + Every.
func (d *Drift) Promoted(v int, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.pending)
	d.version, d.next = v, at.Add(d.c.Every).UTC()
	d.dirty, d.newDay = true, true
}

func candidateOf(k DriftKey, c *cand) DriftCandidate {
	return DriftCandidate{DriftKey: k, Days: c.days, LastDay: dayString(c.lastDay), Peak: c.peak,
		Entities: slices.Clone(c.ents), Seen: seenOf(c.seen)}
}

func sortCandidates(cs []DriftCandidate) {
	type keyed struct {
		s string
		c DriftCandidate
	}
	ks := make([]keyed, len(cs))
	for i, c := range cs {
		ks[i] = keyed{c.String(), c}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return cmp.Or(strings.Compare(a.c.Kind, b.c.Kind), strings.Compare(a.s, b.s)) })
	for i := range ks {
		cs[i] = ks[i].c
	}
}

// driftSlot is where a Deviations detector and those WithConfig derives
// from it find the drift learner, so attaching it needs no rebuild of the
// pipeline's detectors. Until one is attached it keeps the first reports
// (bounded): the agent attaches on its heartbeat, and the events a
// restart replays from the logs arrive before the first one.
type driftSlot struct {
	mu       sync.Mutex
	d        *Drift
	detached bool // RecordDrift(nil): nobody will want the reports
	early    []driftNote
}

// maxEarlyNotes bounds the reports kept before a learner is attached.
const maxEarlyNotes = 1024

type driftNote struct {
	k    DriftKey
	at   time.Time
	n    uint64
	peak uint32
	ents []signal.Entity
}

// RecordDrift makes this detector, and every detector derived from it
// with WithConfig, report the keys it finds new to d (nil: to nobody).
// The reports made before the first attachment are handed to d at once.
func (x *Deviations) RecordDrift(d *Drift) {
	x.drift.mu.Lock()
	x.drift.d, x.drift.detached = d, d == nil
	early := x.drift.early
	x.drift.early = nil
	x.drift.mu.Unlock()
	for _, e := range early {
		if d != nil {
			d.note(e.k, e.at, e.n, e.peak, e.ents)
		}
	}
}

// noteDrift records a report for drift learning: to the attached
// learner, or kept for the first one.
func (x *Deviations) noteDrift(k DriftKey, at time.Time, n uint64, peak uint32, ents []signal.Entity) {
	if x.drift == nil || k.Kind == "" {
		return
	}
	x.drift.mu.Lock()
	d := x.drift.d
	if d == nil && !x.drift.detached && len(x.drift.early) < maxEarlyNotes {
		x.drift.early = append(x.drift.early, driftNote{k, at, n, peak, withoutPIDs(ents)})
	}
	x.drift.mu.Unlock()
	if d != nil {
		d.note(k, at, n, peak, ents)
	}
}

// learnable returns dk, or no key when an operator's verdict distrusts
// the baseline key: drift must not count what is reported only because a
// "missed" verdict took it out of the normal.
func (x *Deviations) learnable(dk DriftKey, key string) DriftKey {
	if x.c.distrusts(key) {
		return DriftKey{}
	}
	return dk
}

func (x *Deviations) noteEvent(k DriftKey, ev *event.Event, ents []signal.Entity) {
	x.noteDrift(k, ev.Time, uint64(ev.N()), 0, ents)
}
