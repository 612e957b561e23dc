package correlate

import (
	"container/heap"
	"sort"
	"time"

	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// MaxWhole is how many open incidents are kept whole (with their signals
// and evidence) in memory: the most recently updated ones. The others are
// summarised (see Incident.Summarised): they keep their id, entities,
// level and score arithmetic, so a returning attacker still joins its
// incident and is not planned for twice, in a few hundred bytes instead of
// the ~10 KB a whole brute-force incident with its evidence takes. Their
// full story is in state (written whole before they were summarised, then
// appended to).
const MaxWhole = 1000

// Correlator holds the open incidents. It is not safe for concurrent use:
// the pipeline goroutine owns it.
//
// Every operation is O(entities + log open): idle incidents are found
// through a heap ordered by last update (the same order the cap closes
// by), the whole ones through a list in update order, so a botnet of
// 50,000 addresses costs no scan per signal.
type Correlator struct {
	policy  *schema.Policy
	trusted TrustCheck
	nextID  int64
	open    map[int64]*Incident
	byKey   map[string]int64 // entity key -> open incident id
	idle    idleHeap         // every open incident, least recently updated first
	// whole lists the incidents kept whole, most recently touched first
	// (sentinel ring); wholeN counts them; wholeCap is MaxWhole (tests
	// lower it).
	whole    Incident
	wholeN   int
	wholeCap int
}

// New returns a correlator whose first incident id is firstID.
func New(p *schema.Policy, trusted TrustCheck, firstID int64) *Correlator {
	if firstID < 1 {
		firstID = 1
	}
	c := &Correlator{policy: p, trusted: trusted, nextID: firstID,
		open: map[int64]*Incident{}, byKey: map[string]int64{}, wholeCap: MaxWhole}
	c.whole.prev, c.whole.next = &c.whole, &c.whole
	return c
}

// SetPolicy swaps the policy (config reload); open incidents are rescored on
// their next signal.
func (c *Correlator) SetPolicy(p *schema.Policy, trusted TrustCheck) {
	c.policy, c.trusted = p, trusted
}

// Restore puts an open incident loaded from state back under correlation, so
// incidents survive a restart. Past MaxWhole restored incidents, the least
// recently updated are summarised at once: a restart after a flood must
// not hold every incident whole either.
func (c *Correlator) Restore(in *Incident) {
	if in.Status == Closed {
		return
	}
	if old := c.open[in.ID]; old != nil {
		c.drop(old)
	}
	c.open[in.ID] = in
	for _, e := range in.Entities {
		c.byKey[e.String()] = in.ID
	}
	if in.ID >= c.nextID {
		c.nextID = in.ID + 1
	}
	heap.Push(&c.idle, in)
	c.touch(in)
	c.Compact(nil)
}

// Change is one incident that an Add or Tick created, changed or closed.
type Change struct {
	Incident *Incident
	New      bool
	// LevelRaised is set when the level went up (a new incident above none
	// counts): the responder plans again.
	LevelRaised bool
	// Merged lists incidents absorbed into this one (now closed).
	Merged []int64
}

// Add correlates one signal. It first closes incidents idle longer than the
// window at the signal's time, so an attacker returning after a quiet period
// opens a fresh incident.
func (c *Correlator) Add(s signal.Signal) (Change, []*Incident) {
	closed := c.Tick(s.Time)
	w := c.policy.Correlation.Window.D()
	var ids []int64
	for _, e := range s.Entities {
		if id, ok := c.byKey[e.String()]; ok {
			if in := c.open[id]; in != nil && s.Time.Sub(in.Updated) <= w {
				ids = appendUnique(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var ch Change
	var in *Incident
	if len(ids) == 0 {
		in = &Incident{ID: c.nextID, Opened: s.Time, Updated: s.Time, Status: Open}
		c.nextID++
		c.open[in.ID] = in
		heap.Push(&c.idle, in)
		ch.New = true
		closed = append(closed, c.capOpen()...)
	} else {
		in = c.open[ids[0]]
		for _, id := range ids[1:] {
			other := c.open[id]
			c.absorb(in, other)
			closed = append(closed, other)
			ch.Merged = append(ch.Merged, id)
		}
		sortSignals(in.Signals)
	}
	c.touch(in)
	before := in.Level
	c.addSignal(in, s)
	// Settled reports carry their episode's last time, which can precede
	// signals already added: keep the story in time order.
	sortSignals(in.Signals)
	for _, e := range s.Entities {
		in.Entities = appendEntity(in.Entities, e)
		c.byKey[e.String()] = in.ID
	}
	if s.Time.After(in.Updated) {
		in.Updated = s.Time
		heap.Fix(&c.idle, in.hidx)
	}
	sc := c.Scoring(in)
	in.Score, in.Level, in.Capped = sc.Score, sc.Level, sc.Capped
	in.Stages = in.Stages[:0]
	for _, w := range sc.PerStage {
		in.Stages = append(in.Stages, w.Stage)
	}
	ch.LevelRaised = in.Level > before
	if !ch.New && ch.LevelRaised {
		in.Status = Escalated
	}
	ch.Incident = in
	return ch, closed
}

// absorb merges other into in (a signal shared entities with both) and
// closes other.
func (c *Correlator) absorb(in, other *Incident) {
	in.Signals = append(in.Signals, other.Signals...)
	if other.sum != nil {
		in.mergeSummary(other.sum)
	}
	for _, e := range other.Entities {
		in.Entities = appendEntity(in.Entities, e)
		c.byKey[e.String()] = in.ID
	}
	if other.Opened.Before(in.Opened) {
		in.Opened = other.Opened
	}
	if other.Updated.After(in.Updated) {
		in.Updated = other.Updated
		heap.Fix(&c.idle, in.hidx)
	}
	other.Status = Closed
	c.drop(other)
}

func (c *Correlator) addSignal(in *Incident, s signal.Signal) {
	// A detector's re-reports of one pattern (same rule and entities) keep
	// the first report and the latest: the story shows when it started and
	// how far it got, not every doubling.
	key := s.Key()
	same := -1
	n := 0
	for i := range in.Signals {
		if in.Signals[i].Key() == key {
			same = i
			n++
		}
	}
	if n >= 2 {
		in.Signals[same] = s
		return
	}
	if len(in.Signals) >= MaxSignals {
		key := s.Key()
		for i := len(in.Signals) - 1; i >= 0; i-- {
			if in.Signals[i].Key() == key {
				in.Signals[i] = s
				return
			}
		}
		// A new pattern past the cap replaces the oldest of its rule, or
		// is dropped: the score already counts its stage's strongest rule.
		return
	}
	in.Signals = append(in.Signals, s)
}

// Tick closes incidents whose last signal is older than the window at now.
func (c *Correlator) Tick(now time.Time) []*Incident {
	w := c.policy.Correlation.Window.D()
	var closed []*Incident
	for len(c.idle) > 0 && now.Sub(c.idle[0].Updated) > w {
		closed = append(closed, c.close(c.idle[0].ID))
	}
	sort.Slice(closed, func(i, j int) bool { return closed[i].ID < closed[j].ID })
	return closed
}

// capOpen closes the least recently updated incidents beyond the cap.
func (c *Correlator) capOpen() []*Incident {
	max := c.policy.Correlation.MaxOpenIncidents
	var closed []*Incident
	for max > 0 && len(c.open) > max {
		closed = append(closed, c.close(c.idle[0].ID))
	}
	return closed
}

func (c *Correlator) close(id int64) *Incident {
	in := c.open[id]
	in.Status = Closed
	c.drop(in)
	return in
}

// drop removes in from every index (closed, or merged away).
func (c *Correlator) drop(in *Incident) {
	delete(c.open, in.ID)
	if in.hidx >= 0 && in.hidx < len(c.idle) && c.idle[in.hidx] == in {
		heap.Remove(&c.idle, in.hidx)
	}
	c.unlinkWhole(in)
	for _, e := range in.Entities {
		if c.byKey[e.String()] == in.ID {
			delete(c.byKey, e.String())
		}
	}
}

// touch makes in the most recently used whole incident; a summarised one
// takes new signals as pending (see Incident.Summarised) and stays
// summarised.
func (c *Correlator) touch(in *Incident) {
	if in.sum != nil {
		return
	}
	c.unlinkWhole(in)
	in.prev, in.next = &c.whole, c.whole.next
	c.whole.next.prev = in
	c.whole.next = in
	c.wholeN++
}

func (c *Correlator) unlinkWhole(in *Incident) {
	if in.next == nil {
		return
	}
	in.prev.next, in.next.prev = in.next, in.prev
	in.prev, in.next = nil, nil
	c.wholeN--
}

// Compact summarises the least recently touched whole incidents beyond
// MaxWhole. The pipeline calls it after each Take, once what changed has
// been handed over for writing, so nothing is summarised before it is
// stored whole; before, when set, sees each incident just before it is
// summarised (the pipeline copies one still waiting to be written). It
// returns how many it summarised.
func (c *Correlator) Compact(before func(*Incident)) int {
	n := 0
	for c.wholeN > c.wholeCap {
		in := c.whole.prev
		c.unlinkWhole(in)
		if before != nil {
			before(in)
		}
		in.summarise()
		n++
	}
	return n
}

// Flushed tells the correlator that in's pending signals (a summarised
// incident's signals since it was summarised) have been taken for
// writing: they join its summary and leave memory.
func (c *Correlator) Flushed(in *Incident) {
	if in.sum != nil && len(in.Signals) > 0 {
		in.summarise()
	}
}

// Whole reports how many open incidents are kept whole in memory.
func (c *Correlator) Whole() int { return c.wholeN }

// Len reports how many incidents are open (whole or summarised).
func (c *Correlator) Len() int { return len(c.open) }

// Open returns the open incidents ordered by id. Summarised incidents
// come with their pending signals only.
func (c *Correlator) Open() []*Incident {
	out := make([]*Incident, 0, len(c.open))
	for _, in := range c.open {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Scoring recomputes the score arithmetic of in under the current policy
// (from its summary and pending signals when it is summarised).
func (c *Correlator) Scoring(in *Incident) Scoring {
	if in.sum == nil {
		return Score(in.Signals, c.policy, c.trusted)
	}
	return in.sum.score(in, c.policy, c.trusted)
}

func appendUnique(ids []int64, id int64) []int64 {
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

func appendEntity(es []signal.Entity, e signal.Entity) []signal.Entity {
	for _, x := range es {
		if x == e {
			return es
		}
	}
	return append(es, e)
}

func sortSignals(s []signal.Signal) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Time.Before(s[j].Time) })
}

// MarkContained records that an action against incident id is in force
// (the action engine calls it once an action applied and passed its
// health checks). A later signal that raises the level makes the incident
// escalated again: the new level may need more than what contains it.
// It reports false for an incident that is not open.
func (c *Correlator) MarkContained(id int64) (*Incident, bool) {
	in := c.open[id]
	if in == nil {
		return nil, false
	}
	in.Status = Contained
	return in, true
}

// Close closes open incident id now (an operator's decision, or the
// engine's after the last action expired with nothing new). It reports
// false for an incident that is not open.
func (c *Correlator) Close(id int64) (*Incident, bool) {
	if c.open[id] == nil {
		return nil, false
	}
	return c.close(id), true
}

// idleHeap orders open incidents by last update, then id: its root is the
// next to close for idleness and the first to go past the cap.
type idleHeap []*Incident

func (h idleHeap) Len() int { return len(h) }
func (h idleHeap) Less(i, j int) bool {
	if !h[i].Updated.Equal(h[j].Updated) {
		return h[i].Updated.Before(h[j].Updated)
	}
	return h[i].ID < h[j].ID
}
func (h idleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *idleHeap) Push(x any) {
	in := x.(*Incident)
	in.hidx = len(*h)
	*h = append(*h, in)
}
func (h *idleHeap) Pop() any {
	old := *h
	in := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	in.hidx = -1
	return in
}
