package baseline

import (
	"net/netip"
	"slices"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Which open incidents hold a drift candidate back (see Drift.Fold).

// absorbable reports whether an incident holds only reports of drift
// candidates, at observe at most, never contained.
func (d *Drift) absorbable(in *correlate.Incident) bool {
	if in.Level > correlate.Observe || in.Status == correlate.Contained || len(in.Signals) == 0 {
		return false
	}
	for i := range in.Signals {
		if !d.isCandidateReport(&in.Signals[i]) {
			return false
		}
	}
	return true
}

// isCandidateReport reports whether s is a deviation report of a key
// drift tracks. The keys are recomputed from the evidence, as the rule
// computed them.
func (d *Drift) isCandidateReport(s *signal.Signal) bool {
	if len(s.Evidence) == 0 {
		return false
	}
	for _, k := range d.keysOf(s.Rule, &s.Evidence[0]) {
		if d.cands[k] != nil || d.pending[k] != nil {
			return true
		}
	}
	return false
}

// keysOf lists the keys a deviation rule may have recorded for ev.
func (d *Drift) keysOf(rule string, ev *event.Event) []DriftKey {
	switch rule {
	case RuleNewProcess:
		if k, ok := procKeyOf(ev); ok {
			return []DriftKey{procDrift(k)}
		}
	case RuleNewDestination:
		if k, ok := outKeyOf(ev); ok {
			return []DriftKey{outDrift(k)}
		}
	case RuleNewListener:
		if k, ok := listenKeyOf(ev); ok {
			return []DriftKey{listenDrift(k)}
		}
	case RuleAuthAnomaly:
		if k, ok := loginKeyOf(ev); ok {
			return []DriftKey{loginDrift(k), hourDrift(k.user, ev.Time.In(d.c.Loc).Hour())}
		}
	case RuleNewPersistence:
		var out []DriftKey
		for _, k := range persistKeysOf(ev) {
			out = append(out, persistDrift(k))
		}
		return out
	case RuleFileChanged:
		if p, h, ok := fileHashOf(ev); ok {
			return []DriftKey{fileDrift(p, h)}
		}
	case RuleRequestRate:
		h := ev.Time.In(d.c.Loc).Hour()
		out := []DriftKey{{Kind: DriftWebSource, Web: webSourceOf(ev), Hour: h}}
		if ev.Addr.IsValid() {
			out = append(out, DriftKey{Kind: DriftWebClient, Web: ev.Addr.Unmap().WithZone("").String(), Hour: h})
		}
		return out
	}
	return nil
}

// involved is what the blocking incidents name.
type involved struct {
	exes, users, files, containers map[string]bool
	ips                            []netip.Addr
}

func newInvolved() *involved {
	return &involved{exes: map[string]bool{}, users: map[string]bool{}, files: map[string]bool{}, containers: map[string]bool{}}
}

func (b *involved) entity(e signal.Entity) {
	switch e.Kind {
	case signal.IP:
		if a, err := netip.ParseAddr(e.Value); err == nil {
			b.ips = append(b.ips, a.Unmap().WithZone(""))
		} else if p, err := netip.ParsePrefix(e.Value); err == nil {
			b.ips = append(b.ips, p.Addr().Unmap())
		}
	case signal.User:
		b.users[e.Value] = true
	case signal.File:
		b.files[e.Value] = true
	case signal.Container:
		b.containers[e.Value] = true
	}
}

func (b *involved) add(in *correlate.Incident) {
	for _, e := range in.Entities {
		b.entity(e)
	}
	for i := range in.Signals {
		s := &in.Signals[i]
		for _, e := range s.Entities {
			b.entity(e)
		}
		for j := range s.Evidence {
			p := s.Evidence[j].Proc
			if p == nil {
				continue
			}
			if x := exeOf(p.Exe, p.Comm); x != "" {
				b.exes[x] = true
			}
			for _, a := range p.Lineage {
				if x := exeOf(a.Exe, a.Comm); x != "" {
					b.exes[x] = true
				}
			}
			if p.Container != nil && p.Container.ID != "" {
				b.containers[p.Container.ID] = true
			}
		}
	}
}

func (b *involved) involves(k DriftKey, c *cand) bool {
	if k.Exe != "" && b.exes[k.Exe] {
		return true
	}
	// A process's user is its actor unless root (everyone's, as in the
	// deviation rules); a login's user always is.
	if k.User != "" && (k.Kind == DriftLogin || k.Kind == DriftLoginHour || (k.User != "root" && k.User != "uid:0")) && b.users[k.User] {
		return true
	}
	if k.Path != "" && b.files[k.Path] {
		return true
	}
	if k.Prefix != "" {
		if p, err := netip.ParsePrefix(k.Prefix); err == nil && slices.ContainsFunc(b.ips, p.Contains) {
			return true
		}
	}
	for _, e := range c.ents {
		switch e.Kind {
		case signal.IP:
			if a, err := netip.ParseAddr(e.Value); err == nil && slices.Contains(b.ips, a.Unmap().WithZone("")) {
				return true
			}
		case signal.User:
			if b.users[e.Value] {
				return true
			}
		case signal.File:
			if b.files[e.Value] {
				return true
			}
		case signal.Container:
			if b.containers[e.Value] {
				return true
			}
		}
	}
	return false
}
