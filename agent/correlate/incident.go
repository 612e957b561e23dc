// Package correlate groups signals into incidents: signals that share an
// entity (source IP, user, process tree, container, file) within the
// correlation window become one incident, whose score, distinct kill-chain
// stages and level are recomputed on every signal. The agent's pipeline and
// `picket replay` drive it with event time; the responder reads its output.
package correlate

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// Level is what an incident's confidence warrants, in increasing order.
type Level int

// Levels. None: recorded below the observe threshold.
const (
	None Level = iota
	Observe
	Contain
	Aggressive
	Lockdown
)

var levelNames = [...]string{"none", "observe", "contain", "aggressive", "lockdown"}

func (l Level) String() string {
	if l < None || l > Lockdown {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// MarshalText writes the level name (JSON contract).
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level name.
func (l *Level) UnmarshalText(b []byte) error {
	for i, n := range levelNames {
		if n == string(b) {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("correlate: unknown level %q", b)
}

// Status is an incident's lifecycle state.
type Status string

// Statuses. Contained is set by the action engine (a later issue).
const (
	Open      Status = "open"
	Escalated Status = "escalated"
	Contained Status = "contained"
	Closed    Status = "closed"
)

// MaxSignals bounds the signals an incident keeps; detectors re-report at
// doubling counts, so this is reached only by incidents spanning many rules
// and entities. Past it, a signal replaces the latest one with the same key.
const MaxSignals = 64

// Incident is a group of correlated signals.
type Incident struct {
	ID       int64           `json:"id"`
	Opened   time.Time       `json:"opened"`
	Updated  time.Time       `json:"updated"`
	Status   Status          `json:"status"`
	Level    Level           `json:"level"`
	Score    float64         `json:"score"`
	Stages   []signal.Stage  `json:"stages"`
	Entities []signal.Entity `json:"entities"`
	Signals  []signal.Signal `json:"signals"`
	// Capped says why the level was held at observe (trusted source, only
	// optional-tool signals), empty otherwise.
	Capped string `json:"capped,omitempty"`
	// Summarised counts the signals of a summarised incident that are no
	// longer in memory (0 for a whole one): past MaxWhole open incidents
	// the least recently updated keep only their entities, level and
	// score arithmetic. Signals then holds only the signals added since
	// they were last taken for writing, and the stored copy must be
	// appended to, not replaced (agent.WriteBatch does).
	Summarised int `json:"-"`

	sum        *summary  // set once summarised
	hidx       int       // index in the correlator's idle heap
	prev, next *Incident // the correlator's list of whole incidents
}

// summary is what a summarised incident keeps of the signals it no longer
// holds: enough to score it exactly as if they were still there.
type summary struct {
	best []StageWeight // the strongest signal of each stage
	tool bool          // every signal came from an optional tool
	n    int           // signals summarised
}

// summarise folds the incident's signals into its summary and drops them.
func (in *Incident) summarise() {
	if in.sum == nil {
		in.sum = &summary{tool: true}
	}
	for _, s := range in.Signals {
		in.sum.best = mergeBest(in.sum.best, StageWeight{Stage: s.Stage, Rule: s.Rule, Weight: s.Weight})
		in.sum.tool = in.sum.tool && s.Tool
	}
	in.sum.n += len(in.Signals)
	in.Summarised = in.sum.n
	in.Signals = nil
}

// mergeSummary folds another incident's summary into in's (a merge):
// in becomes summarised too.
func (in *Incident) mergeSummary(o *summary) {
	if in.sum == nil {
		in.sum = &summary{tool: true}
	}
	for _, w := range o.best {
		in.sum.best = mergeBest(in.sum.best, w)
	}
	in.sum.tool = in.sum.tool && o.tool
	in.sum.n += o.n
	in.Summarised = in.sum.n
}

// score is Score over the summarised signals and the pending ones. Trust
// is judged on the incident's address entities (every signal's entities
// are among them).
func (s *summary) score(in *Incident, p *schema.Policy, trusted TrustCheck) Scoring {
	best := append([]StageWeight(nil), s.best...)
	tool := s.tool
	for _, sg := range in.Signals {
		best = mergeBest(best, StageWeight{Stage: sg.Stage, Rule: sg.Rule, Weight: sg.Weight})
		tool = tool && sg.Tool
	}
	all := func() bool { return trusted != nil && allTrustedEntities(in.Entities, trusted) }
	return finish(best, tool && s.n+len(in.Signals) > 0, all, p)
}

// mergeBest keeps the strongest weight per stage (ties: the smaller rule
// name, as Score does).
func mergeBest(best []StageWeight, w StageWeight) []StageWeight {
	for i := range best {
		if best[i].Stage == w.Stage {
			if w.Weight > best[i].Weight || (w.Weight == best[i].Weight && w.Rule < best[i].Rule) {
				best[i] = w
			}
			return best
		}
	}
	return append(best, w)
}

func allTrustedEntities(es []signal.Entity, trusted TrustCheck) bool {
	seen := false
	for _, e := range es {
		if e.Kind != signal.IP {
			continue
		}
		seen = true
		if !trusted(e) {
			return false
		}
	}
	return seen
}

// Summary is a one-line description: level, score, stages and entities.
func (in *Incident) Summary() string {
	ents := make([]string, len(in.Entities))
	for i, e := range in.Entities {
		ents[i] = e.String()
	}
	st := make([]string, len(in.Stages))
	for i, s := range in.Stages {
		st[i] = string(s)
	}
	return fmt.Sprintf("%s score=%g stages=%s entities=%s", in.Level, in.Score, strings.Join(st, ","), strings.Join(ents, ","))
}

// Scoring is the arithmetic of an incident's score, kept so explanations
// can show it.
type Scoring struct {
	// PerStage is the highest weight seen in each stage, in kill-chain order.
	PerStage []StageWeight `json:"per_stage"`
	Score    float64       `json:"score"`
	Base     Level         `json:"base_level"`
	Escalate int           `json:"stage_escalation"`
	Level    Level         `json:"level"`
	Capped   string        `json:"capped,omitempty"`
}

// StageWeight is one term of the score.
type StageWeight struct {
	Stage  signal.Stage `json:"stage"`
	Rule   string       `json:"rule"`
	Weight float64      `json:"weight"`
}

// TrustCheck reports whether an entity is trusted (its incidents stay at
// observe). Declared here, where it is consumed.
type TrustCheck func(signal.Entity) bool

// Score computes the arithmetic for the incident's signals under policy p.
// Within one stage only the strongest signal counts, so the same activity
// seen by two rules (brute force and spraying) is not counted twice; each
// further distinct stage adds its weight and, with stage escalation on,
// raises the level one step.
func Score(sigs []signal.Signal, p *schema.Policy, trusted TrustCheck) Scoring {
	var best []StageWeight
	allTool := len(sigs) > 0
	for _, s := range sigs {
		if !s.Tool {
			allTool = false
		}
		best = mergeBest(best, StageWeight{Stage: s.Stage, Rule: s.Rule, Weight: s.Weight})
	}
	return finish(best, allTool, func() bool { return trusted != nil && allTrusted(sigs, trusted) }, p)
}

// finish turns the strongest weight per stage into the score and level.
// allTrusted is asked only for a level above observe (it looks addresses
// up in the whitelist).
func finish(best []StageWeight, allTool bool, allTrusted func() bool, p *schema.Policy) Scoring {
	var sc Scoring
	sc.PerStage = append(sc.PerStage, best...)
	sort.Slice(sc.PerStage, func(i, j int) bool { return sc.PerStage[i].Stage.Order() < sc.PerStage[j].Stage.Order() })
	for _, w := range sc.PerStage {
		sc.Score += w.Weight
	}
	sc.Base = LevelFor(sc.Score, p.Levels)
	sc.Level = sc.Base
	if p.Correlation.StageEscalation && len(sc.PerStage) > 1 && sc.Base >= Observe {
		sc.Escalate = len(sc.PerStage) - 1
		sc.Level = min(sc.Base+Level(sc.Escalate), Lockdown)
	}
	switch {
	case allTool && sc.Level > Observe:
		sc.Capped = "only optional-tool signals"
	case sc.Level > Observe && allTrusted():
		sc.Capped = "every source is whitelisted"
	}
	if sc.Capped != "" {
		sc.Level = Observe
	}
	return sc
}

func allTrusted(sigs []signal.Signal, trusted TrustCheck) bool {
	seen := false
	for _, s := range sigs {
		for _, e := range s.Entities {
			if e.Kind != signal.IP {
				continue
			}
			seen = true
			if !trusted(e) {
				return false
			}
		}
	}
	return seen
}

// LevelFor maps a score to a level by the policy's thresholds.
func LevelFor(score float64, l schema.Levels) Level {
	switch {
	case score >= l.Lockdown:
		return Lockdown
	case score >= l.Aggressive:
		return Aggressive
	case score >= l.Contain:
		return Contain
	case score >= l.Observe:
		return Observe
	}
	return None
}
