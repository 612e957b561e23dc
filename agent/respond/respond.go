// Package respond turns an incident at a level into the action plans the
// policy calls for (actions.on_level: contain, then aggressive, then
// lockdown, cumulatively), each with its target, TTL and reason. The
// pipeline calls it whenever an incident's level rises and records the
// plans; the agent hands the plans to the action engine (package actions),
// which guards, applies, checks and expires them.
package respond

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

// Action names are the actions package's (the safe set, also the schema's
// #ActionName).
const (
	BlockSource      = actions.BlockSource
	BlockDestination = actions.BlockDestination
	RateLimit        = actions.RateLimit
	KillTree         = actions.KillTree
	DisableUser      = actions.DisableUser
	EndSessions      = actions.EndSessions
	PauseSSH         = actions.PauseSSH
	IsolateContainer = actions.IsolateContainer
	Containment      = actions.Containment
	planRecorded     = "planned"
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
	// StatusUncorroborated: a destructive action (kill-tree, disable-user,
	// isolate-container) the incident's evidence does not support yet
	// (actions.corroboration); the reason says what is missing. It is
	// planned for real when a later level brings the evidence.
	StatusUncorroborated = "withheld-uncorroborated"
)

// Markers in a plan's reason before the text explanations print for a
// plan that was not carried out.
const (
	RefusedMarker  = "; refused: "
	WithheldMarker = "; withheld: "
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
// re-scored incident does not plan the same block twice, and which it
// withheld for lack of corroboration (and why), so it says so once per
// state of the evidence.
type Responder struct {
	policy   *schema.Policy
	wl       *whitelist.Matcher
	planned  map[int64]map[string]bool
	withheld map[int64]map[string]string
}

// New returns a responder for policy p.
func New(p *schema.Policy, wl *whitelist.Matcher) *Responder {
	return &Responder{policy: p, wl: wl, planned: map[int64]map[string]bool{}, withheld: map[int64]map[string]string{}}
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
	ev := evidenceOf(in)
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
		p := Plan{Incident: in.ID, Time: now, Action: action, Target: target, TTL: r.capTTL(ttl), Level: in.Level,
			Status: StatusPlanned, Reason: fmt.Sprintf("incident %d at %s (score %g): %s", in.ID, in.Level, in.Score, why)}
		guard := r.guarded(action, target)
		ok, note := true, ""
		if guard == "" {
			ok, note = r.corroborated(ev, action)
		}
		if !ok {
			// Not remembered as planned: more evidence may come.
			held := r.withheld[in.ID]
			if held == nil {
				held = map[string]string{}
				r.withheld[in.ID] = held
			}
			if held[k] == note {
				return
			}
			held[k] = note
			p.Status, p.Reason = StatusUncorroborated, p.Reason+WithheldMarker+note
			out = append(out, p)
			return
		}
		seen[k] = true
		if note != "" {
			p.Reason += "; corroborated by " + note
		}
		switch {
		case guard != "":
			p.Status, p.Reason = StatusGuarded, p.Reason+RefusedMarker+guard
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
	for _, name := range r.enabled(in.Level) {
		ttl := r.policy.Actions.TTLOf(name)
		for _, t := range targets(in, name) {
			add(name, t, ttl, why[name])
		}
	}
	return out
}

// why says what each action is for, in the plan's reason.
var why = map[string]string{
	BlockSource:      "block the source address",
	BlockDestination: "block the new outbound destination",
	RateLimit:        "rate-limit the source address",
	KillTree:         "kill the offending process tree",
	DisableUser:      "disable the account the attacker reached",
	EndSessions:      "end the account's sessions",
	PauseSSH:         "pause new SSH logins except from the admin whitelist",
	IsolateContainer: "isolate the container",
	Containment:      "containment: outbound only to the whitelist, inbound rate-limited, new SSH paused",
}

// enabled lists the actions of level and the levels below it, in policy
// order, without repeats.
func (r *Responder) enabled(l correlate.Level) []string {
	o := r.policy.Actions.OnLevel
	lists := [][]string{o.Contain}
	if l >= correlate.Aggressive {
		lists = append(lists, o.Aggressive)
	}
	if l >= correlate.Lockdown {
		lists = append(lists, o.Lockdown)
	}
	var out []string
	seen := map[string]bool{}
	for _, names := range lists {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// targets picks what action name applies to in an incident. Sources and
// destinations are told apart by the signal's subject: egress rules key
// their signals "dst:…". Reconnaissance signals name no user or process
// worth acting on (a scan reaches neither).
func targets(in *correlate.Incident, name string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	switch name {
	case PauseSSH:
		return []string{"sshd"}
	case Containment:
		return []string{"host"}
	}
	for _, s := range in.Signals {
		dst := strings.HasPrefix(s.Subject, "dst:")
		firstProc := true
		for _, e := range s.Entities {
			switch {
			case e.Kind == signal.IP && dst && name == BlockDestination:
				add(e.Value)
			case e.Kind == signal.IP && !dst && (name == BlockSource || name == RateLimit):
				add(e.Value)
			case s.Stage == signal.Recon:
			case e.Kind == signal.Process && name == KillTree && firstProc:
				// The first process entity is the offender; later ones
				// are context (its parent, the web server worker).
				firstProc = false
				add(e.Value)
			case e.Kind == signal.User && (name == DisableUser || name == EndSessions):
				add(e.Value)
			case e.Kind == signal.Container && name == IsolateContainer:
				add(e.Value)
			}
		}
	}
	return out
}

// Forget drops the memory of a closed incident.
func (r *Responder) Forget(id int64) {
	delete(r.planned, id)
	delete(r.withheld, id)
}

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
	if action == KillTree && target == "1" {
		return "PID 1"
	}
	if action != BlockSource && action != BlockDestination && action != RateLimit {
		if action == DisableUser && target == "root" {
			return "the root account is never disabled"
		}
		return ""
	}
	a, err := netip.ParseAddr(target)
	if err != nil {
		return "not an address"
	}
	a = a.Unmap()
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
