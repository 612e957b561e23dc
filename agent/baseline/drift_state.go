package baseline

import (
	"fmt"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// The persistent form of the drift learner.

// DriftState is what the agent persists so a restart keeps the day
// counts.
type DriftState struct {
	// Version is the baseline version the candidates were counted
	// against; another version (a relearn) starts the counts over.
	Version int `json:"version"`
	// Next is the earliest time of the next drift promotion.
	Next       time.Time        `json:"next"`
	Candidates []DriftCandidate `json:"candidates"`
	// Pending are folded candidates waiting for the next promotion.
	Pending []DriftCandidate `json:"pending"`
	Evicted uint64           `json:"evicted,omitempty"`
}

// Unsaved reports whether the state changed since the last Saved, and
// whether the change must be saved soon (a day count, a fold, a
// promotion: what a restart must not lose).
func (d *Drift) Unsaved() (changed, urgent bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirty, d.newDay
}

// Saved marks the state as persisted.
func (d *Drift) Saved() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dirty, d.newDay = false, false
}

// State returns the persistent form, sorted (the same state always
// yields the same bytes).
func (d *Drift) State() DriftState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DriftState{Version: d.version, Next: d.next, Candidates: []DriftCandidate{}, Pending: []DriftCandidate{}, Evicted: d.evicted}
	for k, c := range d.cands {
		s.Candidates = append(s.Candidates, candidateOf(k, c))
	}
	for k, c := range d.pending {
		s.Pending = append(s.Pending, candidateOf(k, c))
	}
	sortCandidates(s.Candidates)
	sortCandidates(s.Pending)
	return s
}

// RestoreDrift resumes a saved state. It validates what a damaged or
// edited state could hold; beyond the cap, candidates are evicted as in
// recording. The result is inactive until SetActive.
func RestoreDrift(s DriftState, c DriftConfig) (*Drift, error) {
	d := NewDrift(c)
	d.version, d.evicted = s.Version, s.Evicted
	if !s.Next.IsZero() {
		d.next = s.Next.UTC()
	}
	load := func(list []DriftCandidate, into map[DriftKey]*cand, what string) error {
		for i, dc := range list {
			if err := validDrift(dc); err != nil {
				return fmt.Errorf("baseline drift %s %d: %w", what, i, err)
			}
			day, _ := time.Parse(time.DateOnly, dc.LastDay)
			d.seq++
			into[dc.DriftKey] = &cand{seen: seen{count: dc.Count, first: dc.First, last: dc.Last}, days: dc.Days,
				lastDay: day.Unix() / 86400, seq: d.seq, peak: dc.Peak, ents: withoutPIDs(dc.Entities)}
		}
		return nil
	}
	if err := load(s.Pending, d.pending, "pending"); err != nil {
		return nil, err
	}
	if err := load(s.Candidates, d.cands, "candidate"); err != nil {
		return nil, err
	}
	if len(d.cands)+len(d.pending) > d.c.Cap {
		d.evict()
	}
	return d, nil
}

func validDrift(c DriftCandidate) error {
	k := c.DriftKey
	if err := validText(k.Kind, k.Parent, k.Exe, k.User, k.Prefix, k.Proto, k.Method, k.What, k.Path, k.Entry, k.SHA256, k.Web); err != nil {
		return err
	}
	if c.Days < 1 {
		return fmt.Errorf("%d days", c.Days)
	}
	if _, err := time.Parse(time.DateOnly, c.LastDay); err != nil {
		return fmt.Errorf("last day: %w", err)
	}
	if first, last := cleanTime(c.First), cleanTime(c.Last); !first.Equal(c.First) || !last.Equal(c.Last) {
		return fmt.Errorf("time not in whole UTC seconds within years 1-9999")
	}
	if k.Hour < 0 || k.Hour > 23 {
		return fmt.Errorf("hour %d", k.Hour)
	}
	if err := validPort(k.Port); err != nil {
		return err
	}
	if _, err := parsePrefix(k.Prefix); err != nil {
		return err
	}
	ok := true
	switch k.Kind {
	case DriftProcess:
		ok = k.Exe != ""
	case DriftLogin, DriftLoginHour:
		ok = k.User != ""
	case DriftPersistence:
		ok = k.What != "" && k.Entry != "" && len(k.Entry) <= maxEntryLen
	case DriftFile:
		_, _, ok = fileHashOf(&event.Event{Change: &event.Change{What: whatFileChanged, Path: k.Path, After: hashPrefix + k.SHA256}})
	case DriftWebSource, DriftWebClient:
		ok = k.Web != ""
	case DriftOutbound, DriftListener:
	default:
		ok = false
	}
	if !ok {
		return errInvalidKey
	}
	return nil
}
