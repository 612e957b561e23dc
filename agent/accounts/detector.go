package accounts

import (
	"fmt"
	"strconv"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Rule ids of the account invariants (a public contract, like every rule
// id: audit entries, suppressions and whitelist proposals name them).
const (
	RuleUID0            = "account.uid0"
	RulePrivilegedGroup = "account.privileged_group"
	RuleSystemShell     = "account.system_login_shell"
	RulePasswordRemoved = "account.password_removed"
	RuleSudoNoPasswd    = "account.sudo_nopasswd"
	RuleSudoRule        = "account.sudo_rule"
	RuleAccountAdded    = "account.added"
)

// DetectorOptions are the signal weights; a zero weight disables the rule.
type DetectorOptions struct {
	UID0Weight            float64
	PrivilegedGroupWeight float64
	SystemShellWeight     float64
	PasswordRemovedWeight float64
	NoPasswdWeight        float64
	SudoRuleWeight        float64
	AccountAddedWeight    float64
}

// DefaultDetectorOptions returns the default weights.
func DefaultDetectorOptions() DetectorOptions {
	return DetectorOptions{UID0Weight: 70, PrivilegedGroupWeight: 50, SystemShellWeight: 40,
		PasswordRemovedWeight: 50, NoPasswdWeight: 50, SudoRuleWeight: 30, AccountAddedWeight: 10}
}

// Detector turns AccountChanged events into signals. It is stateless: the
// sensor has already reduced the files to semantic changes. Removals
// (accounts, sudo rules) raise nothing: taking access away is not an
// attack step, and the event itself stays in the record.
//
// The user entity is "user:<name>", the same key the auth sensor's
// useradd/usermod events and the SSH detectors use, so the account change
// and the tool's log line, and later that account's logins, correlate.
type Detector struct {
	o DetectorOptions
}

// NewDetector returns a detector with the given weights.
func NewDetector(o DetectorOptions) *Detector { return &Detector{o: o} }

// Observe implements the detector interface of agent/detect.
func (d *Detector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Kind != event.AccountChanged || ev.Change == nil {
		return
	}
	c := ev.Change
	if c.Op == OpRemoved {
		return
	}
	var rule string
	var stage signal.Stage
	var w float64
	var reason string
	switch c.What {
	case WhatUID0:
		rule, stage, w = RuleUID0, signal.PrivilegeEscalation, d.o.UID0Weight
		if c.Op == OpAdded {
			reason = fmt.Sprintf("new account %q with uid 0 (%s line %s)", c.Name, c.Path, c.Attrs["line"])
		} else {
			reason = fmt.Sprintf("account %q changed to uid 0 (%s line %s)", c.Name, c.Path, c.Attrs["line"])
		}
	case WhatPrivilegedGroup:
		rule, stage, w = RulePrivilegedGroup, signal.PrivilegeEscalation, d.o.PrivilegedGroupWeight
		reason = fmt.Sprintf("%q added to privileged group %q (%s, %s)", c.Name, c.After, c.Path, c.Attrs["via"])
	case WhatSystemShell:
		rule, stage, w = RuleSystemShell, signal.Persistence, d.o.SystemShellWeight
		reason = fmt.Sprintf("system account %q (uid %s) got login shell %s (was %s)", c.Name, c.Attrs["uid"], c.After, c.Before)
	case WhatPasswordRemoved:
		rule, stage, w = RulePasswordRemoved, signal.Persistence, d.o.PasswordRemovedWeight
		if c.Op == OpAdded {
			reason = fmt.Sprintf("new account %q has an empty password (%s)", c.Name, c.Path)
		} else {
			reason = fmt.Sprintf("password of %q removed: it was %s, now empty (%s)", c.Name, c.Before, c.Path)
		}
	case WhatSudoNoPasswd:
		rule, stage, w = RuleSudoNoPasswd, signal.PrivilegeEscalation, d.o.NoPasswdWeight
		reason = fmt.Sprintf("new passwordless sudo rule for %s in %s line %s: %q", c.Name, c.Path, c.Attrs["line"], c.Attrs["rule"])
		if by := c.Attrs["nopasswd_by"]; by != "" {
			reason += " (no password through " + by + ")"
		}
	case WhatSudoRule:
		rule, stage, w = RuleSudoRule, signal.PrivilegeEscalation, d.o.SudoRuleWeight
		reason = fmt.Sprintf("new sudo rule for %s in %s line %s: %q", c.Name, c.Path, c.Attrs["line"], c.Attrs["rule"])
	case WhatAccountAdded:
		rule, stage, w = RuleAccountAdded, signal.Persistence, d.o.AccountAddedWeight
		reason = fmt.Sprintf("new account %q uid %s shell %s (%s line %s)", c.Name, c.Attrs["uid"], c.Attrs["shell"], c.Path, c.Attrs["line"])
	default:
		return
	}
	if w <= 0 {
		return
	}
	var ents []signal.Entity
	if ev.User != "" {
		ents = append(ents, signal.Entity{Kind: signal.User, Value: ev.User})
	}
	if c.What == WhatSudoNoPasswd || c.What == WhatSudoRule {
		// A sudoers.d drop-in is a file the FIM sensor sees too.
		ents = append(ents, signal.Entity{Kind: signal.File, Value: c.Path})
	}
	if len(ents) == 0 {
		return
	}
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: stage, Weight: w, Entities: ents, Reason: reason,
		Evidence: []event.Event{*ev}, Subject: subject(c)})
}

// subject keeps apart two findings of one rule on one account (two sudo
// rules for alice; alice added to sudo and to docker).
func subject(c *event.Change) string {
	switch c.What {
	case WhatSudoNoPasswd, WhatSudoRule:
		return c.After
	case WhatPrivilegedGroup:
		return "group:" + c.After
	}
	return c.What + ":" + c.Name + ":" + strconv.Quote(c.After)
}
