package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Corroboration is the evidence an incident must hold before an action is
// planned: signals of at least MinRules distinct rules, or one signal of a
// Strong rule. The responder checks it; MinRules 1 means no requirement.
type Corroboration struct {
	MinRules int      `json:"min_rules"`
	Strong   []string `json:"strong"`
}

// IsStrong reports whether rule is one of c's strong rules.
func (c Corroboration) IsStrong(rule string) bool {
	for _, s := range c.Strong {
		if s == rule {
			return true
		}
	}
	return false
}

// CorroborationOf returns the requirement for the named action, if it has
// one.
func (a Actions) CorroborationOf(name string) (Corroboration, bool) {
	c, ok := a.Corroboration[name]
	return c, ok
}

// Heuristic reports whether a rule id names a heuristic: a finding benign
// hosts produce routinely (a build running from /tmp, a daemon whose
// binary an upgrade replaced, anything the baseline never saw). One such
// signal must never be enough for a destructive action, so these can never
// be strong.
func Heuristic(rule string) bool {
	switch rule {
	case "process.exec_tmp", "process.exec_deleted", "process.exec_memfd":
		return true
	}
	return strings.HasPrefix(rule, "baseline.")
}

// corroborationRules checks actions.corroboration and the process lists
// CUE cannot: no heuristic rule is strong; known runtimes' patterns are an
// exact path or a prefix ending in "*".
func corroborationRules(p *Policy) []violation {
	var out []violation
	names := make([]string, 0, len(p.Actions.Corroboration))
	for name := range p.Actions.Corroboration {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for i, r := range p.Actions.Corroboration[name].Strong {
			if Heuristic(r) {
				out = append(out, at(fmt.Sprintf("%s is a heuristic rule: one such signal never suffices for %s (raise min_rules instead)", r, name),
					fmt.Sprintf("actions.corroboration.%s.strong.%d", name, i), "actions.corroboration."+name))
			}
		}
	}
	for i, k := range p.Processes.KnownRuntimes {
		if j := strings.IndexByte(k.Exe, '*'); j >= 0 && j != len(k.Exe)-1 {
			out = append(out, at(fmt.Sprintf("%q: \"*\" is allowed only at the end (a prefix)", k.Exe),
				fmt.Sprintf("processes.known_runtimes.%d.exe", i)))
		}
		if k.Exe == "*" || k.Exe == "/*" || k.Exe == "/memfd:*" {
			out = append(out, at(fmt.Sprintf("%q would excuse every program of its parents", k.Exe),
				fmt.Sprintf("processes.known_runtimes.%d.exe", i)))
		}
	}
	return out
}
