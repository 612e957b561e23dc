package correlate

import (
	"sort"
	"time"

	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// Correlator holds the open incidents. It is not safe for concurrent use:
// the pipeline goroutine owns it.
type Correlator struct {
	policy  *schema.Policy
	trusted TrustCheck
	nextID  int64
	open    map[int64]*Incident
	byKey   map[string]int64 // entity key -> open incident id
}

// New returns a correlator whose first incident id is firstID.
func New(p *schema.Policy, trusted TrustCheck, firstID int64) *Correlator {
	if firstID < 1 {
		firstID = 1
	}
	return &Correlator{policy: p, trusted: trusted, nextID: firstID,
		open: map[int64]*Incident{}, byKey: map[string]int64{}}
}

// SetPolicy swaps the policy (config reload); open incidents are rescored on
// their next signal.
func (c *Correlator) SetPolicy(p *schema.Policy, trusted TrustCheck) {
	c.policy, c.trusted = p, trusted
}

// Restore puts an open incident loaded from state back under correlation, so
// incidents survive a restart.
func (c *Correlator) Restore(in *Incident) {
	if in.Status == Closed {
		return
	}
	c.open[in.ID] = in
	for _, e := range in.Entities {
		c.byKey[e.String()] = in.ID
	}
	if in.ID >= c.nextID {
		c.nextID = in.ID + 1
	}
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
		ch.New = true
		closed = append(closed, c.capOpen()...)
	} else {
		in = c.open[ids[0]]
		for _, id := range ids[1:] {
			other := c.open[id]
			in.Signals = append(in.Signals, other.Signals...)
			for _, e := range other.Entities {
				in.Entities = appendEntity(in.Entities, e)
				c.byKey[e.String()] = in.ID
			}
			if other.Opened.Before(in.Opened) {
				in.Opened = other.Opened
			}
			other.Status = Closed
			delete(c.open, id)
			closed = append(closed, other)
			ch.Merged = append(ch.Merged, id)
		}
		sortSignals(in.Signals)
	}
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
	}
	sc := Score(in.Signals, c.policy, c.trusted)
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
	for id, in := range c.open {
		if now.Sub(in.Updated) > w {
			closed = append(closed, c.close(id))
		}
	}
	sort.Slice(closed, func(i, j int) bool { return closed[i].ID < closed[j].ID })
	return closed
}

// capOpen closes the least recently updated incidents beyond the cap.
func (c *Correlator) capOpen() []*Incident {
	max := c.policy.Correlation.MaxOpenIncidents
	if max <= 0 || len(c.open) <= max {
		return nil
	}
	all := make([]*Incident, 0, len(c.open))
	for _, in := range c.open {
		all = append(all, in)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].Updated.Equal(all[j].Updated) {
			return all[i].Updated.Before(all[j].Updated)
		}
		return all[i].ID < all[j].ID
	})
	var closed []*Incident
	for _, in := range all[:len(all)-max] {
		closed = append(closed, c.close(in.ID))
	}
	return closed
}

func (c *Correlator) close(id int64) *Incident {
	in := c.open[id]
	in.Status = Closed
	delete(c.open, id)
	for _, e := range in.Entities {
		if c.byKey[e.String()] == id {
			delete(c.byKey, e.String())
		}
	}
	return in
}

// Open returns the open incidents ordered by id.
func (c *Correlator) Open() []*Incident {
	out := make([]*Incident, 0, len(c.open))
	for _, in := range c.open {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Scoring recomputes the score arithmetic of in under the current policy.
func (c *Correlator) Scoring(in *Incident) Scoring { return Score(in.Signals, c.policy, c.trusted) }

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
