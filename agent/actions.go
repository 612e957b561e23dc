package agent

import (
	"fmt"
	"time"

	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/schema"
)

// ActionSink is the action engine as the agent sees it; declared here where
// it is consumed (Hands implements it). Plans reach it through the state:
// the agent commits them and wakes it. A nil sink leaves plans recorded
// only (they wait, durably, for an agent that has one).
type ActionSink interface {
	// Wake says committed plans are waiting in the queue.
	Wake()
	SetPolicy(p *schema.Policy)
	SetLearning(on bool)
	// Applied fires when actions took hold; TakeApplied returns their
	// incidents, so the agent marks them contained.
	Applied() <-chan struct{}
	TakeApplied() []int64
}

// Wake implements ActionSink.
func (h *Hands) Wake() { h.Engine.Wake() }

// SetLearning implements ActionSink.
func (h *Hands) SetLearning(on bool) { h.Engine.SetLearning(on) }

// Applied implements ActionSink.
func (h *Hands) Applied() <-chan struct{} { return h.Engine.Applied() }

// TakeApplied implements ActionSink.
func (h *Hands) TakeApplied() []int64 { return h.Engine.TakeApplied() }

// submitPlans wakes the engine when the committed batch queued plans that
// may act (the plans table is its queue).
func (r *runner) submitPlans(plans []respond.Plan) {
	sink := r.a.cfg.Actions
	if sink == nil {
		return
	}
	sink.SetLearning(r.learning)
	for _, p := range plans {
		if p.Status == respond.StatusPlanned {
			sink.Wake()
			return
		}
	}
}

// actionPolicy passes the running policy to the engine.
func (r *runner) actionPolicy() {
	if sink := r.a.cfg.Actions; sink != nil {
		sink.SetPolicy(r.policy)
		sink.SetLearning(r.learning)
	}
}

// contained marks incidents contained once one of their actions holds.
func (r *runner) contained() {
	for _, id := range r.a.cfg.Actions.TakeApplied() {
		r.pl.MarkContained(id, time.Now(), fmt.Sprintf("an action of incident %d is in force", id))
	}
}

// appliedCh is the sink's channel, or nil (a nil channel never fires).
func (a *Agent) appliedCh() <-chan struct{} {
	if a.cfg.Actions == nil {
		return nil
	}
	return a.cfg.Actions.Applied()
}
