// Package detect holds the deterministic detectors: each one watches events,
// keeps bounded per-entity state and emits signals with a reason that counts
// what it saw and names the window. The agent's pipeline and `picket replay`
// both drive a Set; time is always the events' own time, never the wall
// clock, so a replay reproduces exactly what the live agent would have done.
package detect

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

// Rule ids. They are a public contract: they appear in audit entries,
// suppressions and whitelist proposals.
const (
	RuleSSHBruteForce      = "ssh.bruteforce"
	RulePasswordSpray      = "ssh.password_spray"
	RuleLoginAfterFailures = "ssh.login_after_failures"
	RuleWebScan            = "web.scan"
	RuleWebAttack          = "web.attack"
)

// Detector is one rule family.
type Detector interface {
	Observe(ev *event.Event, emit func(signal.Signal))
}

// Stats counts what the detectors dropped, for status and benchmarks.
type Stats struct {
	Ignored  int // events from admin addresses
	Evicted  int // per-source entries evicted by the caps
	Tracked  int // per-source entries currently held
	Detector int
}

// Set is the detectors enabled by one policy.
type Set struct {
	wl        *whitelist.Matcher
	detectors []Detector
	ignored   int
	ssh       *sshDetector
	web       *webDetector
}

// New builds the detectors the policy enables, plus extra ones (detectors
// that live with their sensors: network, accounts, persistence, files).
func New(p *schema.Policy, wl *whitelist.Matcher, extra ...Detector) *Set {
	s := &Set{wl: wl}
	capacity := p.Detectors.MaxTrackedSources
	if capacity <= 0 {
		capacity = 50000
	}
	d := p.Detectors
	if d.SSHBruteForce.Enabled || d.PasswordSpray.Enabled || d.LoginAfterFailures.Enabled {
		s.ssh = newSSHDetector(d, capacity)
		s.detectors = append(s.detectors, s.ssh)
	}
	if d.WebScan.Enabled {
		s.web = newWebDetector(d.WebScan, capacity)
		s.detectors = append(s.detectors, s.web)
	}
	if d.ProcessInvariants.Enabled {
		s.detectors = append(s.detectors, newProcessDetector(p))
	}
	s.detectors = append(s.detectors, extra...)
	return s
}

// Observe feeds one event to every detector. Events from admin addresses are
// dropped here, once, so no detector can count the operator as an attacker.
func (s *Set) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Addr.IsValid() && s.wl.Admin(ev.Addr) {
		s.ignored++
		return
	}
	for _, d := range s.detectors {
		d.Observe(ev, emit)
	}
}

// Settle lets detectors report the final counts of episodes that ended
// (quiet for longer than their window at now), or of every episode when
// final is set (end of a replay). The pipeline calls it on its tick.
func (s *Set) Settle(now time.Time, final bool, emit func(signal.Signal)) {
	if s.ssh != nil {
		s.ssh.settle(now, final, emit)
	}
	if s.web != nil {
		s.web.settle(now, final, emit)
	}
}

// sortSignals orders signals by time, then rule and key, so settling is
// deterministic whatever the map order.
func sortSignals(ss []signal.Signal) {
	sort.Slice(ss, func(i, j int) bool {
		if !ss[i].Time.Equal(ss[j].Time) {
			return ss[i].Time.Before(ss[j].Time)
		}
		return ss[i].Key() < ss[j].Key()
	})
}

// Stats reports counters.
func (s *Set) Stats() Stats {
	st := Stats{Ignored: s.ignored, Detector: len(s.detectors)}
	if s.ssh != nil {
		st.Evicted += s.ssh.sources.evict
		st.Tracked += s.ssh.sources.len()
	}
	if s.web != nil {
		st.Evicted += s.web.sources.evict
		st.Tracked += s.web.sources.len()
	}
	return st
}

// ring keeps the times of the last n occurrences, enough to answer "did n
// happen within w?" in O(1) memory per source. Times are Unix nanoseconds
// (8 bytes, not a time.Time's 24: there is one ring per tracked source).
type ring struct {
	t    []int64
	next int
	full bool
}

func newRing(n int) ring {
	if n < 1 {
		n = 1
	}
	return ring{t: make([]int64, n)}
}

func (r *ring) push(t time.Time) {
	r.t[r.next] = t.UnixNano()
	r.next++
	if r.next == len(r.t) {
		r.next, r.full = 0, true
	}
}

// within reports whether the ring is full and its oldest entry is no older
// than w before now.
func (r *ring) within(now time.Time, w time.Duration) bool {
	if !r.full {
		return false
	}
	return now.UnixNano()-r.t[r.next] <= int64(w)
}

func (r *ring) reset() {
	r.next, r.full = 0, false
}

// nameSet keeps up to max distinct names in first-seen order, counting the
// rest, so reasons can list them deterministically without unbounded growth.
type nameSet struct {
	names []string
	more  int
}

func (n *nameSet) add(s string, max int) {
	for _, x := range n.names {
		if x == s {
			return
		}
	}
	if len(n.names) < max {
		// A copy: s is usually a slice of a log line, which it would
		// keep alive.
		n.names = append(n.names, strings.Clone(s))
		return
	}
	n.more++
}

func (n *nameSet) String() string {
	var b strings.Builder
	for i, x := range n.names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(x))
	}
	if n.more > 0 {
		b.WriteString(" and ")
		b.WriteString(strconv.Itoa(n.more))
		b.WriteString(" more")
	}
	return b.String()
}

// evidenceBudget bounds the evidence events all sources of one detector
// hold together (an event is ~500 bytes with its line): 16,384 keep 10
// events each for 1,600 sources, and past that a source keeps only the
// first event of its episode. A botnet of 50,000 addresses then costs
// one line per address, not ten; the reasons keep their exact counts,
// and what a signal already carried is in its incident.
const evidenceBudget = 16384

// evidence is a source's evidence events, charged to its detector's
// budget.
type evidence struct {
	evs []event.Event
}

// add keeps ev if the source has none yet or the budget allows.
func (e *evidence) add(ev *event.Event, held *int) {
	if len(e.evs) >= signal.MaxEvidence || (len(e.evs) > 0 && *held >= evidenceBudget) {
		return
	}
	e.evs = append(e.evs, *ev)
	*held++
}

// release gives the events back to the budget (episode reset, eviction).
func (e *evidence) release(held *int) {
	*held -= len(e.evs)
	e.evs = nil
}

// shared returns the events for a signal without copying them: the
// source only ever appends past the length a signal sees, and a signal
// that adds evidence (capacity = length) reallocates.
func (e *evidence) shared() []event.Event {
	return e.evs[:len(e.evs):len(e.evs)]
}

func ipEntity(a netip.Addr) signal.Entity {
	return signal.Entity{Kind: signal.IP, Value: a.Unmap().String()}
}

// span renders the time an episode covered, rounded to seconds for stable
// text.
func span(from, to time.Time) string {
	return to.Sub(from).Round(time.Second).String()
}
