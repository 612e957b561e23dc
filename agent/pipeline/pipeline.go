// Package pipeline wires detectors, correlator and responder into the one
// path every event takes: event → signals → incidents → plans, with an
// audit entry for every decision. The live agent and `picket replay` run
// the same Pipeline; they differ only in where events come from and where
// the Batch goes (SQLite for the agent, memory for replay).
package pipeline

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/audit/explain"
	"github.com/picket-agent/picket/schema"
)

// Batch is what processing produced since the last Take: the incidents that
// changed (latest state), the plans and the audit entries, in order.
type Batch struct {
	Incidents []*correlate.Incident
	Plans     []respond.Plan
	Audit     []audit.Entry
	Signals   int
	Events    int
}

// Empty reports whether the batch has nothing to write.
func (b *Batch) Empty() bool {
	return len(b.Incidents) == 0 && len(b.Plans) == 0 && len(b.Audit) == 0
}

// Options configure a pipeline.
type Options struct {
	// Clock gives the decision time for audit entries; nil uses the event
	// time (replay: deterministic output).
	Clock func() time.Time
	// Learning reports whether the learning period is running at t.
	Learning func(t time.Time) bool
	// FirstIncidentID continues numbering after what state already holds.
	FirstIncidentID int64
	// Detectors builds the detectors that live outside package detect
	// (with their sensors) for a policy; called again on every SetPolicy.
	Detectors func(p *schema.Policy) []detect.Detector
	// Feedback, when set, sees every event and may drop or reweigh every
	// signal before the correlator: the operator verdicts' local,
	// temporary effects (agent/feedback).
	Feedback Feedback
}

// Feedback is the hook of operator verdicts into the pipeline; it is
// called from the pipeline's goroutine and must be cheap.
type Feedback interface {
	// Event sees every event (recent events become a "missed" case).
	Event(ev *event.Event)
	// Signal returns the signal to correlate (possibly with a lower
	// weight) and false to drop it (a suppressed pattern).
	Signal(s signal.Signal) (signal.Signal, bool)
}

// Pipeline is single-threaded: one goroutine owns it.
type Pipeline struct {
	opt     Options
	policy  *schema.Policy
	wl      *whitelist.Matcher
	det     *detect.Set
	corr    *correlate.Correlator
	resp    *respond.Responder
	changed map[int64]*correlate.Incident
	batch   Batch
	last    time.Time
}

// New builds a pipeline for policy p.
func New(p *schema.Policy, opt Options) (*Pipeline, error) {
	wl, err := whitelist.New(p.Whitelist)
	if err != nil {
		return nil, err
	}
	pl := &Pipeline{opt: opt, policy: p, wl: wl, changed: map[int64]*correlate.Incident{}}
	pl.det = pl.detectors(p, wl)
	pl.corr = correlate.New(p, pl.trusted, opt.FirstIncidentID)
	pl.resp = respond.New(p, wl)
	return pl, nil
}

func (pl *Pipeline) detectors(p *schema.Policy, wl *whitelist.Matcher) *detect.Set {
	var extra []detect.Detector
	if pl.opt.Detectors != nil {
		extra = pl.opt.Detectors(p)
	}
	return detect.New(p, wl, extra...)
}

func (pl *Pipeline) trusted(e signal.Entity) bool {
	if e.Kind != signal.IP {
		return false
	}
	p, err := whitelist.ParsePrefix(e.Value)
	return err == nil && pl.wl.Trusted(p.Addr())
}

// SetPolicy applies a new policy without losing open incidents. Detector
// state restarts (thresholds may have changed meaning); incidents keep
// correlating and are rescored on their next signal.
func (pl *Pipeline) SetPolicy(p *schema.Policy) error {
	wl, err := whitelist.New(p.Whitelist)
	if err != nil {
		return err
	}
	pl.policy, pl.wl = p, wl
	pl.det = pl.detectors(p, wl)
	pl.corr.SetPolicy(p, pl.trusted)
	pl.resp.SetPolicy(p, wl)
	return nil
}

// Restore re-opens an incident loaded from state.
func (pl *Pipeline) Restore(in *correlate.Incident) { pl.corr.Restore(in) }

// Process runs one event through the detectors and everything downstream.
func (pl *Pipeline) Process(ev *event.Event) {
	pl.batch.Events++
	if pl.opt.Feedback != nil {
		pl.opt.Feedback.Event(ev)
	}
	if ev.Time.After(pl.last) {
		pl.last = ev.Time
	}
	pl.det.Observe(ev, pl.onSignal)
}

// Tick closes idle incidents at t (the live agent calls it on a timer with
// the wall clock; replay calls it once at the end of input).
func (pl *Pipeline) Tick(t time.Time) {
	pl.det.Settle(t, false, pl.onSignal)
	for _, in := range pl.corr.Tick(t) {
		pl.closed(in, t, "idle for longer than the correlation window")
	}
}

func (pl *Pipeline) now(evTime time.Time) time.Time {
	if pl.opt.Clock != nil {
		return pl.opt.Clock()
	}
	return evTime
}

func (pl *Pipeline) onSignal(s signal.Signal) {
	pl.batch.Signals++
	if pl.opt.Feedback != nil {
		var keep bool
		if s, keep = pl.opt.Feedback.Signal(s); !keep {
			return
		}
	}
	ch, closed := pl.corr.Add(s)
	at := pl.now(s.Time)
	for _, in := range closed {
		reason := "idle for longer than the correlation window"
		for _, m := range ch.Merged {
			if m == in.ID {
				reason = fmt.Sprintf("merged into incident %d (shared entity)", ch.Incident.ID)
			}
		}
		pl.closed(in, at, reason)
	}
	in := ch.Incident
	if _, pending := pl.changed[in.ID]; !pending && in.Summarised > 0 && !ch.New && !ch.LevelRaised && len(ch.Merged) == 0 && len(closed) == 0 {
		// A summarised incident's re-report (a brute force's count
		// doubling) that changes neither its level nor (so) its status: the
		// audit entry below records it; rewriting the stored story for
		// it would cost a write per signal in a flood. (One already
		// waiting for the batch keeps its pending signals.)
		pl.corr.Flushed(in)
	} else {
		pl.changed[in.ID] = in
	}
	switch {
	case ch.New:
		pl.audit(at, audit.KindIncident, in, fmt.Sprintf("incident %d opened at level %s (score %g): %s: %s",
			in.ID, in.Level, in.Score, s.Rule, s.Reason), s)
	case ch.LevelRaised:
		pl.audit(at, audit.KindIncident, in, fmt.Sprintf("incident %d escalated to %s (score %g, stages %s): %s: %s",
			in.ID, in.Level, in.Score, explain.Stages(in.Stages), s.Rule, s.Reason), s)
	default:
		pl.audit(at, audit.KindIncident, in, fmt.Sprintf("incident %d updated (level %s, score %g): %s: %s",
			in.ID, in.Level, in.Score, s.Rule, s.Reason), s)
	}
	// A rule new to the incident can bring what an action was waiting
	// for (corroboration, a process to kill) without raising the level:
	// the responder looks again then too (it never plans twice).
	if ch.New || ch.LevelRaised || (in.Level >= correlate.Contain && newRule(in, s.Rule)) {
		learning := pl.opt.Learning != nil && pl.opt.Learning(at)
		for _, p := range pl.resp.Plan(in, at, respond.Mode{Learning: learning}) {
			pl.batch.Plans = append(pl.batch.Plans, p)
			data, _ := json.Marshal(p)
			pl.batch.Audit = append(pl.batch.Audit, audit.Entry{Time: at, Kind: audit.KindPlan,
				Subject: fmt.Sprintf("incident:%d", in.ID),
				Message: fmt.Sprintf("plan %s %s for %s: %s [%s]", p.Action, p.Target, p.TTL, p.Reason, p.Status),
				Data:    data})
		}
	}
}

func (pl *Pipeline) closed(in *correlate.Incident, at time.Time, why string) {
	pl.changed[in.ID] = in
	pl.resp.Forget(in.ID)
	pl.batch.Audit = append(pl.batch.Audit, audit.Entry{Time: at, Kind: audit.KindIncident,
		Subject: fmt.Sprintf("incident:%d", in.ID),
		Message: fmt.Sprintf("incident %d closed at level %s (score %g): %s", in.ID, in.Level, in.Score, why)})
}

// signalRecord is the audit data of an incident decision: the signal that
// caused it, so the entry explains itself without the incident table.
type signalRecord struct {
	Incident int64           `json:"incident"`
	Level    correlate.Level `json:"level"`
	Score    float64         `json:"score"`
	Signal   signal.Signal   `json:"signal"`
}

func (pl *Pipeline) audit(at time.Time, kind string, in *correlate.Incident, msg string, s signal.Signal) {
	s.Evidence = nil // evidence lives with the incident; keep entries small
	data, _ := json.Marshal(signalRecord{Incident: in.ID, Level: in.Level, Score: in.Score, Signal: s})
	pl.batch.Audit = append(pl.batch.Audit, audit.Entry{Time: at, Kind: kind,
		Subject: fmt.Sprintf("incident:%d", in.ID), Message: msg, Data: data})
}

// Flush makes detectors report the final counts of every running episode
// without closing anything (end of a replay's input).
func (pl *Pipeline) Flush() {
	pl.det.Settle(pl.last, true, pl.onSignal)
}

// Take returns the batch accumulated since the last call and starts a new one.
//
// It is also where memory is given back: a summarised incident's pending
// signals go with the batch (a copy of the incident, whose Summarised
// says to append them to the stored one) and leave memory, and whole
// incidents past correlate.MaxWhole are summarised once the batch holds
// what they still had to write.
func (pl *Pipeline) Take() Batch {
	b := pl.batch
	pl.batch = Batch{}
	for _, in := range pl.changed {
		if in.Summarised > 0 {
			cp := *in
			b.Incidents = append(b.Incidents, &cp)
			pl.corr.Flushed(in)
			continue
		}
		b.Incidents = append(b.Incidents, in)
	}
	sort.Slice(b.Incidents, func(i, j int) bool { return b.Incidents[i].ID < b.Incidents[j].ID })
	clear(pl.changed)
	pl.corr.Compact(func(in *correlate.Incident) {
		// Still to be written whole: the batch keeps its own copy (the
		// slice of signals is not touched again once summarised).
		i := sort.Search(len(b.Incidents), func(i int) bool { return b.Incidents[i].ID >= in.ID })
		if i < len(b.Incidents) && b.Incidents[i] == in {
			cp := *in
			b.Incidents[i] = &cp
		}
	})
	return b
}

// Scoring exposes the score arithmetic of an incident for explanations.
func (pl *Pipeline) Scoring(in *correlate.Incident) correlate.Scoring { return pl.corr.Scoring(in) }

// Stats returns detector counters.
func (pl *Pipeline) Stats() detect.Stats { return pl.det.Stats() }

// Policy returns the policy in force.
func (pl *Pipeline) Policy() *schema.Policy { return pl.policy }

// Open returns the open incidents (summarised ones with their pending
// signals only).
func (pl *Pipeline) Open() []*correlate.Incident { return pl.corr.Open() }

// OpenCount reports how many incidents are open and how many of them are
// kept whole in memory, without listing them.
func (pl *Pipeline) OpenCount() (open, whole int) { return pl.corr.Len(), pl.corr.Whole() }

// MarkContained records that an action against incident id is in force
// (for the action engine), with an audit entry; false if it is not open.
func (pl *Pipeline) MarkContained(id int64, at time.Time, why string) bool {
	in, ok := pl.corr.MarkContained(id)
	if !ok {
		return false
	}
	pl.changed[in.ID] = in
	pl.batch.Audit = append(pl.batch.Audit, audit.Entry{Time: at, Kind: audit.KindIncident,
		Subject: fmt.Sprintf("incident:%d", in.ID),
		Message: fmt.Sprintf("incident %d contained at level %s (score %g): %s", in.ID, in.Level, in.Score, why)})
	return true
}

// Close closes open incident id (an operator's decision), with an audit
// entry; false if it is not open.
func (pl *Pipeline) Close(id int64, at time.Time, why string) bool {
	in, ok := pl.corr.Close(id)
	if !ok {
		return false
	}
	pl.closed(in, at, why)
	return true
}

// newRule reports whether s's rule appears in the incident's signals only
// once (the signal just added). A summarised incident holds only the
// signals not yet written, so it cannot tell: its rules are not new (its
// first plans were made while it was whole).
func newRule(in *correlate.Incident, rule string) bool {
	if in.Summarised > 0 {
		return false
	}
	n := 0
	for i := range in.Signals {
		if in.Signals[i].Rule == rule {
			if n++; n > 1 {
				return false
			}
		}
	}
	return n == 1
}
