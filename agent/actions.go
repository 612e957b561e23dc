package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/schema"
)

// ActionSink receives the plans the responder makes, once they are
// committed; declared here where it is consumed (Hands implements it). A
// nil sink leaves plans recorded only.
type ActionSink interface {
	Submit(ctx context.Context, reqs ...actions.Request)
	SetPolicy(p *schema.Policy)
	SetLearning(on bool)
	// Applied delivers the incident of every action that took hold, so
	// the incident is marked contained.
	Applied() <-chan int64
}

// Submit implements ActionSink.
func (h *Hands) Submit(ctx context.Context, reqs ...actions.Request) { h.Engine.Submit(ctx, reqs...) }

// SetLearning implements ActionSink.
func (h *Hands) SetLearning(on bool) { h.Engine.SetLearning(on) }

// Applied implements ActionSink.
func (h *Hands) Applied() <-chan int64 { return h.Engine.Applied() }

// submitPlans hands the committed plans that may act to the engine.
func (r *runner) submitPlans(ctx context.Context, plans []respond.Plan) {
	sink := r.a.cfg.Actions
	if sink == nil {
		return
	}
	sink.SetLearning(r.learning)
	var reqs []actions.Request
	for _, p := range plans {
		if p.Status != respond.StatusPlanned {
			continue
		}
		reqs = append(reqs, actions.Request{Incident: p.Incident, Kind: p.Action, Target: p.Target, TTL: p.TTL.D(), Reason: p.Reason})
	}
	if len(reqs) > 0 {
		sink.Submit(ctx, reqs...)
	}
}

// actionPolicy passes the running policy to the engine.
func (r *runner) actionPolicy() {
	if sink := r.a.cfg.Actions; sink != nil {
		sink.SetPolicy(r.policy)
		sink.SetLearning(r.learning)
	}
}

// contained marks an incident contained once one of its actions holds.
func (r *runner) contained(id int64) {
	r.pl.MarkContained(id, time.Now(), fmt.Sprintf("an action of incident %d is in force", id))
}

// appliedCh is the sink's channel, or nil (a nil channel never fires).
func (a *Agent) appliedCh() <-chan int64 {
	if a.cfg.Actions == nil {
		return nil
	}
	return a.cfg.Actions.Applied()
}
