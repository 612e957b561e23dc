// Package respond turns an incident at a level into the action plans the
// policy calls for. In this version plans are recorded and audited, never
// executed: the executors and their safety engine live in actions/ (a later
// issue). The pipeline calls it whenever an incident's level rises.
package respond

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

// Action names, a public contract shared with the action engine.
const (
	BlockIP      = "block-ip"
	DisableUser  = "disable-user"
	EndSessions  = "end-sessions"
	PauseSSH     = "pause-ssh"
	Containment  = "containment"
	planRecorded = "planned"
)

// Plan statuses.
const (
	// StatusPlanned: would be applied (no executor yet, or replay).
	StatusPlanned = planRecorded
	// StatusLearning: suppressed because the learning period is running.
	StatusLearning = "suppressed-learning"
	// StatusObserve: suppressed because the policy mode is observe.
	StatusObserve = "suppressed-observe"
	// StatusGuarded: refused by a guard (admin whitelist, loopback).
	StatusGuarded = "refused-guard"
)

// Plan is one action the responder would take.
type Plan struct {
	Incident int64           `json:"incident"`
	Time     time.Time       `json:"time"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	TTL      schema.Duration `json:"ttl"`
	Level    correlate.Level `json:"level"`
	Status   string          `json:"status"`
	Reason   string          `json:"reason"`
}

// Responder remembers which plans each open incident already has, so a
// re-scored incident does not plan the same block twice.
type Responder struct {
	policy  *schema.Policy
	wl      *whitelist.Matcher
	planned map[int64]map[string]bool
}

// New returns a responder for policy p.
func New(p *schema.Policy, wl *whitelist.Matcher) *Responder {
	return &Responder{policy: p, wl: wl, planned: map[int64]map[string]bool{}}
}

// SetPolicy swaps the policy on reload.
func (r *Responder) SetPolicy(p *schema.Policy, wl *whitelist.Matcher) { r.policy, r.wl = p, wl }

// Mode is what the agent may do right now.
type Mode struct {
	Learning bool // learning period running: read-only
}

// Plan returns the new plans for in at its current level.
func (r *Responder) Plan(in *correlate.Incident, now time.Time, m Mode) []Plan {
	var out []Plan
	add := func(action, target string, ttl schema.Duration, why string) {
		seen := r.planned[in.ID]
		if seen == nil {
			seen = map[string]bool{}
			r.planned[in.ID] = seen
		}
		k := action + " " + target
		if seen[k] {
			return
		}
		seen[k] = true
		p := Plan{Incident: in.ID, Time: now, Action: action, Target: target, TTL: r.capTTL(ttl), Level: in.Level,
			Status: StatusPlanned, Reason: fmt.Sprintf("incident %d at %s (score %g): %s", in.ID, in.Level, in.Score, why)}
		switch {
		case r.guarded(action, target) != "":
			p.Status, p.Reason = StatusGuarded, p.Reason+"; refused: "+r.guarded(action, target)
		case m.Learning:
			p.Status = StatusLearning
		case r.policy.Mode == "observe":
			p.Status = StatusObserve
		}
		out = append(out, p)
	}
	if in.Level < correlate.Contain {
		return nil
	}
	a := r.policy.Actions
	for _, e := range in.Entities {
		if e.Kind == signal.IP {
			add(BlockIP, e.Value, a.BlockTTL, "block the source address")
		}
	}
	if in.Level >= correlate.Aggressive {
		for _, s := range in.Signals {
			if s.Stage == signal.Recon {
				continue
			}
			for _, e := range s.Entities {
				if e.Kind == signal.User {
					add(DisableUser, e.Value, a.DefaultTTL, "disable the account the attacker reached")
					add(EndSessions, e.Value, a.DefaultTTL, "end the account's sessions")
				}
			}
		}
	}
	if in.Level >= correlate.Lockdown {
		add(Containment, "host", a.ContainmentTTL, "containment: outbound only to the whitelist, inbound rate-limited, new SSH paused")
	}
	return out
}

// Forget drops the memory of a closed incident.
func (r *Responder) Forget(id int64) { delete(r.planned, id) }

func (r *Responder) capTTL(d schema.Duration) schema.Duration {
	if d <= 0 {
		d = r.policy.Actions.DefaultTTL
	}
	if max := r.policy.Actions.MaxTTL; max > 0 && d > max {
		d = max
	}
	return d
}

// guarded returns why an action must never be taken against target, or "".
func (r *Responder) guarded(action, target string) string {
	if action != BlockIP {
		if action == DisableUser && target == "root" {
			return "the root account is never disabled"
		}
		return ""
	}
	a, err := netip.ParseAddr(target)
	if err != nil {
		return "not an address"
	}
	switch {
	case a.IsLoopback():
		return "loopback"
	case r.wl.Admin(a):
		return "admin whitelist"
	case a.IsUnspecified():
		return "unspecified address"
	}
	return ""
}
