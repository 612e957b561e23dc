package persist

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Rule ids of the persistence detector.
const (
	RuleCron          = "persistence.cron" // cron_line and cron_script
	RuleSystemd       = "persistence.systemd"
	RuleRCLocal       = "persistence.rc_local"
	RuleInitScript    = "persistence.init_script"
	RuleShellProfile  = "persistence.shell_profile"
	RuleAuthorizedKey = "persistence.authorized_key"
	RuleLDPreload     = "persistence.ld_preload"
	RuleSetuid        = "persistence.setuid"
	RuleFileCap       = "persistence.file_capability"
)

// DetectorOptions are the signal weights; a zero weight disables a rule.
type DetectorOptions struct {
	CronWeight          float64
	SystemdWeight       float64
	VendorUnitWeight    float64 // a new unit in /lib/systemd/system: package installs do that too
	RCLocalWeight       float64
	InitScriptWeight    float64
	ShellProfileWeight  float64
	AuthorizedKeyWeight float64
	LDPreloadWeight     float64
	SetuidWeight        float64
	FileCapWeight       float64
}

// DefaultDetectorOptions returns the default weights.
func DefaultDetectorOptions() DetectorOptions {
	return DetectorOptions{CronWeight: 50, SystemdWeight: 50, VendorUnitWeight: 20, RCLocalWeight: 50, InitScriptWeight: 50,
		ShellProfileWeight: 40, AuthorizedKeyWeight: 50, LDPreloadWeight: 80, SetuidWeight: 60, FileCapWeight: 60}
}

// Detector turns PersistChanged additions and modifications into
// persistence signals. Removals raise nothing — taking a way in away is
// not an attack step — but stay recorded as events (audit, replay, and
// the baseline work that will learn from them). It keeps no state.
type Detector struct {
	o DetectorOptions
}

// NewDetector returns a detector with the given weights.
func NewDetector(o DetectorOptions) *Detector { return &Detector{o: o} }

// maxReasonText bounds what of an added line a reason quotes.
const maxReasonText = 200

func quote(s string) string {
	if len(s) > maxReasonText {
		s = s[:maxReasonText] + "…"
	}
	return strconv.Quote(s)
}

// Observe implements the detector interface of agent/detect.
func (d *Detector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Kind != event.PersistChanged || ev.Change == nil {
		return
	}
	c := ev.Change
	if c.Op == OpRemoved || c.After == "" {
		return
	}
	verb := "new"
	if c.Op == OpModified {
		verb = "changed"
	}
	var rule, reason string
	var w float64
	switch c.What {
	case WhatCronLine:
		rule, w = RuleCron, d.o.CronWeight
		reason = fmt.Sprintf("new cron line in %s: %s", c.Path, quote(c.After))
		if env := c.Attrs["env"]; env != "" {
			reason = fmt.Sprintf("new cron environment setting %s in %s: %s", env, c.Path, quote(c.After))
		}
	case WhatCronScript:
		rule, w = RuleCron, d.o.CronWeight
		reason = linesReason(c, "periodic cron script")
	case WhatSystemdUnit:
		rule, w = RuleSystemd, d.o.SystemdWeight
		what := "systemd unit"
		if c.Attrs["vendor"] == "true" {
			w, what = d.o.VendorUnitWeight, "vendor systemd unit"
		}
		reason = fmt.Sprintf("%s %s %s: %s", verb, what, c.Path, quote(strings.ReplaceAll(c.After, "\n", "; ")))
		if t := c.Attrs["target"]; t != "" {
			reason = fmt.Sprintf("%s %s %s (→ %s): %s", verb, what, c.Path, t, quote(strings.ReplaceAll(c.After, "\n", "; ")))
		}
	case WhatRCLocal:
		rule, w = RuleRCLocal, d.o.RCLocalWeight
		reason = linesReason(c, "rc.local")
	case WhatInitScript:
		rule, w = RuleInitScript, d.o.InitScriptWeight
		reason = linesReason(c, "init script")
	case WhatShellProfile:
		rule, w = RuleShellProfile, d.o.ShellProfileWeight
		reason = linesReason(c, "shell profile")
	case WhatAuthorizedKey:
		rule, w = RuleAuthorizedKey, d.o.AuthorizedKeyWeight
		reason = fmt.Sprintf("new authorized key for %s in %s: %s", c.Name, c.Path, c.After)
		if o := c.Attrs["options"]; o != "" {
			reason += " (options " + quote(o) + ")"
		}
	case WhatLDPreload:
		rule, w = RuleLDPreload, d.o.LDPreloadWeight
		reason = fmt.Sprintf("%s now preloads %s into every process", c.Path, c.After)
	case WhatSetuid:
		rule, w = RuleSetuid, d.o.SetuidWeight
		reason = fmt.Sprintf("%s set-id file %s (%s)", verb, c.Path, c.After)
		if c.Op == OpModified {
			reason += ", was " + c.Before
		}
	case WhatFileCap:
		rule, w = RuleFileCap, d.o.FileCapWeight
		reason = fmt.Sprintf("%s file capability on %s: %s", verb, c.Path, c.After)
	default:
		return
	}
	if w <= 0 {
		return
	}
	var ents []signal.Entity
	// The user joins the change with that user's logins and processes,
	// but root is everyone's: keyed on it, every root change would share
	// one incident.
	if ev.User != "" && ev.User != "root" {
		ents = append(ents, signal.Entity{Kind: signal.User, Value: ev.User})
	}
	ents = append(ents, signal.Entity{Kind: signal.File, Value: c.Path})
	if t := c.Attrs["target"]; t != "" {
		// A unit file and the link enabling it are one act.
		ents = append(ents, signal.Entity{Kind: signal.File, Value: t})
	}
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: signal.Persistence, Weight: w, Entities: ents,
		Reason: reason, Evidence: []event.Event{*ev}, Subject: c.What + ":" + c.After})
}

func linesReason(c *event.Change, what string) string {
	if c.Op == OpAdded {
		return fmt.Sprintf("new %s %s: %s", what, c.Path, quote(c.After))
	}
	return fmt.Sprintf("lines added to %s %s: %s", what, c.Path, quote(c.After))
}
