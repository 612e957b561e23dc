// Package signal defines what detectors emit: one finding with its rule, its
// kill-chain stage, its weight, the entities it concerns, the events that
// prove it and a deterministic human-readable reason. The correlator groups
// signals into incidents; explanations and the audit trail print them.
package signal

import (
	"sort"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// Stage is a step of the (minimal) kill chain. Several distinct stages in one
// incident escalate it.
type Stage string

// The stages, in kill-chain order.
const (
	Recon               Stage = "recon"
	InitialAccess       Stage = "initial-access"
	Execution           Stage = "execution"
	Persistence         Stage = "persistence"
	PrivilegeEscalation Stage = "privilege-escalation"
	Exfiltration        Stage = "exfiltration"
)

// Order returns the position of s in the kill chain (unknown stages last), so
// explanations list stages in attack order.
func (s Stage) Order() int {
	switch s {
	case Recon:
		return 0
	case InitialAccess:
		return 1
	case Execution:
		return 2
	case Persistence:
		return 3
	case PrivilegeEscalation:
		return 4
	case Exfiltration:
		return 5
	}
	return 6
}

// SortStages orders stages along the kill chain.
func SortStages(ss []Stage) {
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].Order() != ss[j].Order() {
			return ss[i].Order() < ss[j].Order()
		}
		return ss[i] < ss[j]
	})
}

// EntityKind says what an entity is.
type EntityKind string

// Entity kinds; signals sharing an entity correlate.
const (
	IP        EntityKind = "ip"
	User      EntityKind = "user"
	Process   EntityKind = "process"
	Container EntityKind = "container"
	File      EntityKind = "file"
)

// Entity is one thing a signal is about.
type Entity struct {
	Kind  EntityKind `json:"kind"`
	Value string     `json:"value"`
}

// String renders "kind:value", the form used in explanations and keys.
func (e Entity) String() string { return string(e.Kind) + ":" + e.Value }

// MaxEvidence bounds the events a signal carries, so a flood cannot grow an
// incident without limit; the reason states the full count.
const MaxEvidence = 10

// Signal is one detector finding.
type Signal struct {
	Time   time.Time `json:"time"`
	Rule   string    `json:"rule"`
	Stage  Stage     `json:"stage"`
	Weight float64   `json:"weight"`
	// Entities are correlation keys: signals that share one join the same
	// incident. Only entities that identify the actor belong here (a source
	// IP, a user who logged in), not every user name a scanner tried.
	Entities []Entity `json:"entities"`
	// Reason is deterministic: the same evidence always yields the same text.
	Reason   string        `json:"reason"`
	Evidence []event.Event `json:"evidence,omitempty"`
	// Tool marks signals from optional third-party tools: they add confidence
	// but never raise an incident above observe on their own.
	Tool bool `json:"tool,omitempty"`
	// Subject tells apart findings of one rule on the same entities (each
	// process below a web worker); empty for a detector's re-reports of one
	// ongoing pattern (a brute force's growing count), which replace each
	// other.
	Subject string `json:"subject,omitempty"`
}

// Key identifies the pattern of a signal (rule + entities) for
// de-duplication and suppression.
func (s *Signal) Key() string {
	parts := make([]string, 0, len(s.Entities)+1)
	parts = append(parts, s.Rule)
	for _, e := range s.Entities {
		parts = append(parts, e.String())
	}
	if s.Subject != "" {
		parts = append(parts, s.Subject)
	}
	return strings.Join(parts, "|")
}

// AddEvidence appends ev while fewer than MaxEvidence are kept.
func (s *Signal) AddEvidence(ev event.Event) {
	if len(s.Evidence) < MaxEvidence {
		s.Evidence = append(s.Evidence, ev)
	}
}
