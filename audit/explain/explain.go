// Package explain renders incidents as deterministic, human-readable stories
// without an LLM: the signals in time order with their stage, reason and
// evidence, what joined them (the correlation scope), then the score
// arithmetic and the level it maps to, then the plans, with why one was
// withheld or refused. `picket explain`, `picket replay` and audit exports
// use it; the same incident always renders to the same bytes.
package explain

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// Options tune the rendering.
type Options struct {
	// Evidence is how many evidence lines to print per signal (0: none).
	Evidence int
}

// Incident writes the story of in.
func Incident(w io.Writer, in *correlate.Incident, sc correlate.Scoring, levels schema.Levels, plans []respond.Plan, o Options) error {
	var b strings.Builder
	fmt.Fprintf(&b, "incident %d: level %s, score %g, status %s\n", in.ID, in.Level, in.Score, in.Status)
	fmt.Fprintf(&b, "  window: %s .. %s\n", stamp(in.Opened), stamp(in.Updated))
	ents := make([]string, len(in.Entities))
	for i, e := range in.Entities {
		ents[i] = e.String()
	}
	fmt.Fprintf(&b, "  entities: %s\n", strings.Join(ents, ", "))
	b.WriteString(correlationRule)
	b.WriteString("  story:\n")
	// Re-reports of a pattern carry the same first evidence lines; print
	// each line once, under the first signal that has it.
	printed := map[string]bool{}
	for _, s := range in.Signals {
		fmt.Fprintf(&b, "    %s  %-14s %-26s +%-4g %s\n", stamp(s.Time), s.Stage, s.Rule, s.Weight, s.Reason)
		n := 0
		for _, ev := range s.Evidence {
			if n >= o.Evidence {
				break
			}
			if ev.Line != "" && !printed[ev.Line] {
				printed[ev.Line] = true
				n++
				fmt.Fprintf(&b, "        | %s\n", oneLine(ev.Line))
			}
		}
	}
	b.WriteString("  score: ")
	terms := make([]string, len(sc.PerStage))
	for i, t := range sc.PerStage {
		terms[i] = fmt.Sprintf("%s %g (%s)", t.Stage, t.Weight, t.Rule)
	}
	if len(terms) == 0 {
		terms = []string{"0"}
	}
	fmt.Fprintf(&b, "%s = %g (strongest signal per kill-chain stage)\n", strings.Join(terms, " + "), sc.Score)
	fmt.Fprintf(&b, "  level: %g -> %s (thresholds: observe %g, contain %g, aggressive %g, lockdown %g)",
		sc.Score, sc.Base, levels.Observe, levels.Contain, levels.Aggressive, levels.Lockdown)
	if sc.Escalate > 0 {
		fmt.Fprintf(&b, "; %d distinct stages raise it %d step(s) -> %s", len(sc.PerStage), sc.Escalate, min(sc.Base+correlate.Level(sc.Escalate), correlate.Lockdown))
	}
	if sc.Capped != "" {
		fmt.Fprintf(&b, "; held at observe: %s", sc.Capped)
	}
	b.WriteString("\n")
	if len(plans) > 0 {
		b.WriteString("  plans:\n")
		for _, p := range plans {
			fmt.Fprintf(&b, "    %s %s for %s [%s]%s\n", p.Action, p.Target, p.TTL, p.Status, whyNot(p))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// correlationRule says what joined the signals into this incident (the
// scope the detectors give their entities), so a reader can tell a story
// from a coincidence.
const correlationRule = `  correlation: signals join on a shared ip, container, file, user (account events and strong
    process findings only) or process tree: the process, and its parent unless that belongs to the
    ordinary session (init, sshd, cron, tmux, terminals, login shells, container shims), or the
    web server worker it runs under; a common session ancestor is never a reason to join
`

// whyNot is the reason a plan was not carried out (withheld for lack of
// corroboration, refused by a guard), from its recorded reason.
func whyNot(p respond.Plan) string {
	if p.Status == respond.StatusPlanned {
		return ""
	}
	for _, m := range []string{respond.WithheldMarker, respond.RefusedMarker} {
		if i := strings.LastIndex(p.Reason, m); i >= 0 {
			return " " + p.Reason[i+len(m):]
		}
	}
	return ""
}

// Stages lists stage names joined by commas.
func Stages(ss []signal.Stage) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ",")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
