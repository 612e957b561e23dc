package schema

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Rules CUE could express only with unreadable errors, checked on the
// decoded policy. Each violation names candidate paths for its position:
// the first one set in a file is reported, so a violation caused by a
// default (levels.contain left at 50, levels.observe raised to 60) points
// at the field the operator did write.

// maxTTLCap bounds actions.max_ttl: picket makes no permanent change, and
// a week is long enough for anyone to notice an action.
const maxTTLCap = 7 * 24 * time.Hour

// Learning periods shorter than a day miss the daily cycle (backups, cron,
// log rotation); longer than three days delays protection for little gain.
const (
	minLearning = 24 * time.Hour
	maxLearning = 72 * time.Hour
)

type violation struct {
	paths [][]string // candidates for the position; paths[0] is reported
	msg   string
}

func at(msg string, paths ...string) violation {
	v := violation{msg: msg}
	for _, p := range paths {
		v.paths = append(v.paths, strings.Split(p, "."))
	}
	return v
}

func policyRules(p *Policy) []violation {
	var out []violation

	levels := []struct {
		name  string
		value float64
	}{
		{"observe", p.Levels.Observe},
		{"contain", p.Levels.Contain},
		{"aggressive", p.Levels.Aggressive},
		{"lockdown", p.Levels.Lockdown},
	}
	for i := 1; i < len(levels); i++ {
		lo, hi := levels[i-1], levels[i]
		if hi.value <= lo.value {
			out = append(out, at(fmt.Sprintf("%v must be greater than levels.%s (%v)", hi.value, lo.name, lo.value),
				"levels."+hi.name, "levels."+lo.name))
		}
	}

	if d := p.Learning.Period.D(); d != 0 && (d < minLearning || d > maxLearning) {
		out = append(out, at(fmt.Sprintf("%s must be 0s (no learning) or between 24h and 72h", ShortDuration(d)), "learning.period"))
	}

	for _, w := range []struct {
		path string
		d    Duration
	}{
		{"correlation.window", p.Correlation.Window},
		{"detectors.ssh_bruteforce.window", p.Detectors.SSHBruteForce.Window},
		{"detectors.password_spray.window", p.Detectors.PasswordSpray.Window},
		{"detectors.login_after_failures.window", p.Detectors.LoginAfterFailures.Window},
		{"detectors.web_scan.window", p.Detectors.WebScan.Window},
		{"learning.drift.every", p.Learning.Drift.Every},
	} {
		if w.d <= 0 {
			out = append(out, at(fmt.Sprintf("%s must be positive", ShortDuration(w.d.D())), w.path))
		}
	}

	maxTTL := p.Actions.MaxTTL.D()
	switch {
	case maxTTL <= 0:
		out = append(out, at(fmt.Sprintf("%s must be positive", ShortDuration(maxTTL)), "actions.max_ttl"))
	case maxTTL > maxTTLCap:
		out = append(out, at(fmt.Sprintf("%s is above the hard cap of 168h (7 days): actions must stay temporary", ShortDuration(maxTTL)), "actions.max_ttl"))
	}
	for _, t := range []struct {
		name string
		d    Duration
	}{
		{"default_ttl", p.Actions.DefaultTTL},
		{"block_ttl", p.Actions.BlockTTL},
		{"containment_ttl", p.Actions.ContainmentTTL},
	} {
		switch d := t.d.D(); {
		case d <= 0:
			out = append(out, at(fmt.Sprintf("%s must be positive", ShortDuration(d)), "actions."+t.name))
		case maxTTL > 0 && d > maxTTL:
			out = append(out, at(fmt.Sprintf("%s must be at most actions.max_ttl (%s)", ShortDuration(d), ShortDuration(maxTTL)),
				"actions."+t.name, "actions.max_ttl"))
		}
	}

	ttlNames := make([]string, 0, len(p.Actions.TTL))
	for name := range p.Actions.TTL {
		ttlNames = append(ttlNames, name)
	}
	sort.Strings(ttlNames)
	for _, name := range ttlNames {
		switch d := p.Actions.TTL[name].D(); {
		case d <= 0:
			out = append(out, at(fmt.Sprintf("%s must be positive", ShortDuration(d)), "actions.ttl."+name))
		case maxTTL > 0 && d > maxTTL:
			out = append(out, at(fmt.Sprintf("%s must be at most actions.max_ttl (%s)", ShortDuration(d), ShortDuration(maxTTL)),
				"actions.ttl."+name, "actions.max_ttl"))
		}
	}
	for i, a := range p.Actions.Containment.Allow {
		if err := checkCIDR(a); err != nil {
			out = append(out, at(err.Error(), fmt.Sprintf("actions.containment.allow.%d", i)))
		}
	}
	if p.Actions.ReconcileInterval <= 0 {
		out = append(out, at("must be positive", "actions.reconcile_interval"))
	}
	if p.Actions.Health.Interval <= 0 {
		out = append(out, at("must be positive", "actions.health.interval"))
	}
	for i, c := range p.Actions.Health.Checks {
		n := 0
		for _, set := range []bool{c.TCP != "", c.HTTP != "", c.SSHD, c.GitRemote, len(c.Exec) > 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			out = append(out, at(fmt.Sprintf("check %q must set exactly one of tcp, http, sshd, git_remote, exec (has %d)", c.Name, n),
				fmt.Sprintf("actions.health.checks.%d", i)))
		}
	}

	out = append(out, corroborationRules(p)...)
	out = append(out, cidrRules("admin_ips", p.Whitelist.AdminIPs)...)
	out = append(out, cidrRules("ips", p.Whitelist.IPs)...)
	return out
}

func cidrRules(list string, entries map[string]WhitelistIP) []violation {
	var out []violation
	for name, e := range entries {
		path := [][]string{{"whitelist", list, name, "cidr"}}
		if err := checkCIDR(e.CIDR); err != nil {
			out = append(out, violation{paths: path, msg: err.Error()})
		}
	}
	return out
}

// checkCIDR accepts an address or a prefix. A prefix with host bits set is
// rejected because it is ambiguous: 203.0.113.5/24 may mean the address or
// the network.
func checkCIDR(s string) error {
	if !strings.Contains(s, "/") {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		return nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if pfx.Bits() == 0 {
		return fmt.Errorf("%q matches every address: whitelisting it would disable picket", s)
	}
	if m := pfx.Masked(); m != pfx {
		return fmt.Errorf("%q has host bits set: write %q for the network or %q for the address", s, m.String(), pfx.Addr().String())
	}
	return nil
}

// ShortDuration prints a duration without zero units: 1h, 30m, 1h30m
// (validation messages, the action journal, `picket actions`).
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
