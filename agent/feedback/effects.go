package feedback

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/proposals"
)

// Suppression kinds in state.
const (
	// KindSuppress drops one rule's signals for one entity.
	KindSuppress = proposals.SuppressKind
	// KindDampen multiplies one rule's weight by DampenFactor.
	KindDampen = "dampen"
)

// DampenFactor is what too-aggressive does to a rule's weight while its
// damper holds: the weight is halved, which at the default thresholds
// (contain 50, aggressive 100) steps an incident driven by that rule down
// one level. It is a weight, not a cap, so several independent rules can
// still escalate together.
const DampenFactor = 0.5

// RecentEvents bounds the events kept in memory for "missed" cases.
const RecentEvents = 4096

// Effects is the live, in-memory view of the verdicts' local effects: the
// pipeline consults it for every signal (Signal), feeds it every event
// (Event), and the baseline asks it about keys (Distrusted). It is safe for
// concurrent use: the feedback worker reloads it from state while the
// pipeline reads it.
type Effects struct {
	mu        sync.RWMutex
	suppress  map[string][]suppression // rule → entities
	dampen    map[string]time.Time     // rule → expiry
	untrusted map[string]bool
	now       func() time.Time
	dropped   atomic.Int64
	damped    atomic.Int64

	rmu    sync.Mutex
	recent []*event.Event
	next   int
}

type suppression struct {
	entity  string
	expires time.Time
}

// NewEffects returns an empty view; now is the clock (nil: time.Now).
func NewEffects(now func() time.Time) *Effects {
	if now == nil {
		now = time.Now
	}
	return &Effects{suppress: map[string][]suppression{}, dampen: map[string]time.Time{}, untrusted: map[string]bool{}, now: now,
		recent: make([]*event.Event, 0, RecentEvents)}
}

// Load replaces the view with what state holds.
func (e *Effects) Load(ctx context.Context, st *state.Store) error {
	sups, err := st.Suppressions(ctx, true)
	if err != nil {
		return err
	}
	keys, err := st.UntrustedKeys(ctx)
	if err != nil {
		return err
	}
	sup, damp, un := map[string][]suppression{}, map[string]time.Time{}, make(map[string]bool, len(keys))
	for _, s := range sups {
		switch s.Kind {
		case KindSuppress:
			sup[s.Rule] = append(sup[s.Rule], suppression{entity: s.Entity, expires: s.Expires})
		case KindDampen:
			if s.Expires.After(damp[s.Rule]) {
				damp[s.Rule] = s.Expires
			}
		}
	}
	for _, k := range keys {
		un[k] = true
	}
	e.mu.Lock()
	e.suppress, e.dampen, e.untrusted = sup, damp, un
	e.mu.Unlock()
	return nil
}

// Signal implements pipeline.Feedback: a suppressed (rule, entity) drops
// the signal, a damped rule halves its weight. Expiry is checked here too,
// so an effect ends on time even between reloads.
func (e *Effects) Signal(s signal.Signal) (signal.Signal, bool) {
	now := e.now()
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, sup := range e.suppress[s.Rule] {
		if !now.Before(sup.expires) {
			continue
		}
		for _, ent := range s.Entities {
			if ent.String() == sup.entity {
				e.dropped.Add(1)
				return s, false
			}
		}
	}
	if exp, ok := e.dampen[s.Rule]; ok && now.Before(exp) {
		s.Weight *= DampenFactor
		e.damped.Add(1)
	}
	return s, true
}

// Event implements pipeline.Feedback: it keeps the most recent events.
func (e *Effects) Event(ev *event.Event) {
	e.rmu.Lock()
	if len(e.recent) < RecentEvents {
		e.recent = append(e.recent, ev)
	} else {
		e.recent[e.next] = ev
	}
	e.next = (e.next + 1) % RecentEvents
	e.rmu.Unlock()
}

// Recent returns the kept events that match, oldest first.
func (e *Effects) Recent(match func(*event.Event) bool) []*event.Event {
	e.rmu.Lock()
	defer e.rmu.Unlock()
	var out []*event.Event
	n := len(e.recent)
	for i := range n {
		ev := e.recent[(e.next+i)%n]
		if len(e.recent) < RecentEvents {
			ev = e.recent[i]
		}
		if match(ev) {
			out = append(out, ev)
		}
	}
	slices.SortStableFunc(out, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// Distrusted reports whether a baseline key was taken out of the normal.
func (e *Effects) Distrusted(key string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.untrusted[key]
}

// Counts reports how many signals were dropped and damped since start.
func (e *Effects) Counts() (dropped, damped int64) { return e.dropped.Load(), e.damped.Load() }
