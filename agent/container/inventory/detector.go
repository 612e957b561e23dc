package inventory

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Rule ids: a public contract (audit entries, suppressions).
const (
	RulePrivileged    = "container.privileged"
	RuleHostMount     = "container.host_mount"
	RuleHostNamespace = "container.host_namespace"
	RuleDangerousCaps = "container.dangerous_caps"
)

// DetectorOptions configure the Detector. A rule whose weight is 0 is off;
// nil lists take the defaults. Start from DefaultDetectorOptions.
type DetectorOptions struct {
	PrivilegedWeight    float64
	HostMountWeight     float64
	HostNamespaceWeight float64
	DangerousCapsWeight float64

	// HostPaths are the sensitive host paths. A bind mount is flagged
	// when its source is one of them, an ancestor of one (mounting /var
	// exposes /var/lib/docker) or below one (/etc/shadow, /root/.ssh),
	// unless it is at or below one of HostPathsAllowed. "/" matches
	// only itself, or every bind mount would be flagged.
	HostPaths []string
	// HostPathsAllowed are the harmless paths below sensitive ones that
	// images commonly mount (the host's time zone, CA certificates). An
	// exact entry of HostPaths is flagged whatever this says.
	HostPathsAllowed []string
	// DangerousCaps are the capabilities (without CAP_, upper case) whose
	// addition is flagged; "ALL" is --cap-add=ALL.
	DangerousCaps []string
	// SkipInitial leaves alone the containers already running when the
	// agent started (Detail DetailInitial). Off by default: a privileged
	// container that predates the agent is flagged once per start.
	SkipInitial bool
}

// DefaultHostPaths are the host paths whose mount into a container hands
// it the host: the root, configuration and credentials, the Docker socket
// and storage, kernel interfaces, devices and homes.
func DefaultHostPaths() []string {
	return []string{"/", "/etc", "/root", "/var/run/docker.sock", "/run/docker.sock", "/proc", "/sys",
		"/boot", "/var/lib/docker", "/home", "/dev"}
}

// DefaultHostPathsAllowed are read by many images and expose nothing.
func DefaultHostPathsAllowed() []string {
	return []string{"/etc/localtime", "/etc/timezone", "/etc/ssl/certs", "/etc/ca-certificates",
		"/etc/pki/ca-trust/extracted", "/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"}
}

// DefaultDangerousCaps are the capabilities that open a known way out of a
// container or onto the host: mounts and namespaces (SYS_ADMIN), other
// processes' memory (SYS_PTRACE), kernel modules (SYS_MODULE), the host
// network when shared (NET_ADMIN), any file by handle (DAC_READ_SEARCH).
func DefaultDangerousCaps() []string {
	return []string{"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "NET_ADMIN", "DAC_READ_SEARCH", "ALL"}
}

// DefaultDetectorOptions are the defaults the schema mirrors.
func DefaultDetectorOptions() DetectorOptions {
	return DetectorOptions{
		PrivilegedWeight:    50,
		HostMountWeight:     60,
		HostNamespaceWeight: 30,
		DangerousCapsWeight: 40,
		HostPaths:           DefaultHostPaths(),
		HostPathsAllowed:    DefaultHostPathsAllowed(),
		DangerousCaps:       DefaultDangerousCaps(),
	}
}

// Detector flags risky containers from the Sensor's events. It keeps no
// state: everything is in the event, so a container re-reported (renamed,
// or at the next agent start) yields the same signal key and the
// correlator replaces rather than adds.
type Detector struct {
	o       DetectorOptions
	paths   []string
	allowed []string
	caps    map[string]bool
}

// NewDetector builds a Detector.
func NewDetector(o DetectorOptions) *Detector {
	if o.HostPaths == nil {
		o.HostPaths = DefaultHostPaths()
	}
	if o.HostPathsAllowed == nil {
		o.HostPathsAllowed = DefaultHostPathsAllowed()
	}
	if o.DangerousCaps == nil {
		o.DangerousCaps = DefaultDangerousCaps()
	}
	d := &Detector{o: o, caps: map[string]bool{}}
	for _, p := range o.HostPaths {
		if p != "" {
			d.paths = append(d.paths, path.Clean(p))
		}
	}
	for _, p := range o.HostPathsAllowed {
		if p != "" {
			d.allowed = append(d.allowed, path.Clean(p))
		}
	}
	for _, c := range o.DangerousCaps {
		d.caps[strings.TrimPrefix(strings.ToUpper(c), "CAP_")] = true
	}
	return d
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// Sensitive reports whether mounting host path src exposes a sensitive
// path (see DetectorOptions.HostPaths).
func (d *Detector) Sensitive(src string) bool {
	if src == "" || !strings.HasPrefix(src, "/") {
		return false
	}
	src = path.Clean(src)
	for _, hp := range d.paths {
		switch {
		case src == hp, within(hp, src):
			// The path itself, or a directory above it.
			return true
		case hp != "/" && within(src, hp):
			// Below it ("/" is itself only: everything is below it).
			if !slices.ContainsFunc(d.allowed, func(a string) bool { return within(src, a) }) {
				return true
			}
		}
	}
	return false
}

// Observe implements the detector interface of agent/detect.
func (d *Detector) Observe(ev *event.Event, emit func(signal.Signal)) {
	c := ev.Change
	if ev.Kind != event.ContainerChanged || c == nil || c.What != WhatContainer || (c.Op != "added" && c.Op != "modified") {
		return
	}
	if d.o.SkipInitial && ev.Detail == DetailInitial {
		return
	}
	id := c.Attrs[AttrID]
	if id == "" && ev.Proc != nil && ev.Proc.Container != nil {
		id = ev.Proc.Container.ID
	}
	if id == "" {
		return
	}
	label := fmt.Sprintf("container %q", cmp.Or(c.Name, shortID(id)))
	if img := c.Attrs[AttrImage]; img != "" {
		label += " (" + img + ")"
	}
	suffix := ""
	if ev.Detail == DetailInitial {
		suffix = ", running when the agent started"
	}
	send := func(rule string, w float64, what string) {
		if w <= 0 {
			return
		}
		emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: signal.PrivilegeEscalation, Weight: w,
			Entities: []signal.Entity{{Kind: signal.Container, Value: id}},
			Reason:   label + " " + what + suffix, Evidence: []event.Event{*ev}})
	}

	if c.Attrs[AttrPrivileged] == "true" {
		send(RulePrivileged, d.o.PrivilegedWeight, "runs privileged (all capabilities, host devices, no seccomp or AppArmor)")
	}
	var mounts []string
	for _, m := range ParseMounts(c.Attrs[AttrMounts]) {
		if !d.Sensitive(m.Source) {
			continue
		}
		s := "host " + m.Source
		if m.RW {
			s += " read-write"
		} else {
			s += " read-only"
		}
		if path.Clean(m.Destination) != path.Clean(m.Source) {
			s += " at " + m.Destination
		}
		mounts = append(mounts, s)
	}
	if len(mounts) > 0 {
		send(RuleHostMount, d.o.HostMountWeight, "mounts "+strings.Join(mounts, ", "))
	}
	var ns []string
	if c.Attrs[AttrNetworkMode] == "host" {
		ns = append(ns, "network")
	}
	if c.Attrs[AttrPidMode] == "host" {
		ns = append(ns, "PID")
	}
	switch len(ns) {
	case 1:
		send(RuleHostNamespace, d.o.HostNamespaceWeight, "shares the host's "+ns[0]+" namespace")
	case 2:
		send(RuleHostNamespace, d.o.HostNamespaceWeight, "shares the host's network and PID namespaces")
	}
	var caps []string
	for cp := range strings.SplitSeq(c.Attrs[AttrCapAdd], ",") {
		if d.caps[cp] {
			caps = append(caps, cp)
		}
	}
	if len(caps) > 0 {
		send(RuleDangerousCaps, d.o.DangerousCapsWeight, "adds capabilities "+strings.Join(caps, ", "))
	}
}

// shortID is the 12-character id docker ps shows.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
