package respond

import (
	"fmt"
	"sort"
	"strings"

	"github.com/picket-agent/picket/agent/correlate"
)

// evidence is what an incident holds that can corroborate an action: the
// distinct rules of its signals, sorted. A signal of weight 0 (a rule
// turned off) and optional-tool signals count for nothing: tools add
// confidence, never decide.
type evidence []string

func evidenceOf(in *correlate.Incident) evidence {
	var rules []string
	seen := map[string]bool{}
	for _, s := range in.Signals {
		if s.Tool || s.Weight <= 0 || seen[s.Rule] {
			continue
		}
		seen[s.Rule] = true
		rules = append(rules, s.Rule)
	}
	sort.Strings(rules)
	return rules
}

// corroborated checks action against actions.corroboration: it needs the
// incident to hold signals of at least min_rules distinct rules, or one of
// a strong rule. The text says what corroborated it ("" for actions
// without a requirement), or what is missing.
func (r *Responder) corroborated(ev evidence, action string) (bool, string) {
	c, ok := r.policy.Actions.CorroborationOf(action)
	if !ok || (c.MinRules <= 1 && len(c.Strong) == 0) {
		return true, ""
	}
	for _, rule := range ev {
		if c.IsStrong(rule) {
			return true, "strong rule " + rule
		}
	}
	if len(ev) >= c.MinRules {
		return true, fmt.Sprintf("%d distinct rules (%s)", len(ev), strings.Join(ev, ", "))
	}
	has := "none"
	if len(ev) > 0 {
		has = fmt.Sprintf("%d (%s)", len(ev), strings.Join(ev, ", "))
	}
	need := fmt.Sprintf("%d distinct rules", c.MinRules)
	if len(c.Strong) > 0 {
		need += " or one of " + strings.Join(c.Strong, ", ")
	}
	return false, fmt.Sprintf("uncorroborated: needs %s; has %s", need, has)
}
