package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/picket-agent/picket/agent/container"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

// SensorName is the inventory sensor's name (no offsets: the running
// containers are live state).
const SensorName = "containers"

// WhatContainer is Change.What of the inventory's events.
const WhatContainer = "container"

// DetailInitial is Event.Detail of the containers found by the first
// successful poll: they were running before the agent could watch them
// start. The detector still flags risky ones (once per agent start), since
// a privileged container that predates the agent is as dangerous as a new
// one.
const DetailInitial = "initial"

// Change.Attrs keys of the inventory's events. The values are what the
// detector reads, so their format is part of the contract.
const (
	AttrID          = "id"
	AttrImage       = "image"        // Config.Image, as the user named it
	AttrImageID     = "image_id"     // sha256:…
	AttrPrivileged  = "privileged"   // "true" or "false", always present
	AttrCapAdd      = "cap_add"      // sorted, comma-separated, without the CAP_ prefix: "NET_ADMIN,SYS_ADMIN"
	AttrNetworkMode = "network_mode" // "host", "bridge", "none", "container:<id>", a network name
	AttrPidMode     = "pid_mode"     // "host", "container:<id>"; absent for a private PID namespace
	// AttrMounts lists the bind mounts (host paths), sorted, comma-
	// separated, each "source:destination:rw" or "…:ro", with "%", ","
	// and ":" in paths percent-encoded.
	AttrMounts = "mounts"
	// AttrVolumes lists the named volumes (the daemon's own storage, not
	// host paths), sorted, comma-separated.
	AttrVolumes = "volumes"
)

// Options configure a Sensor; zero fields take the defaults
// of DefaultOptions.
type Options struct {
	// Socket is the daemon's socket (container.DefaultDockerSocket).
	Socket string
	// Interval between polls (10 s). A container that lives less than
	// that may be missed; its processes are still seen by the process
	// sensor.
	Interval time.Duration
	// Timeout bounds one request to the daemon (2 s).
	Timeout time.Duration
	// MaxContainers bounds the containers tracked (2048); more are
	// counted in Live, not reported.
	MaxContainers int
	// Runtime is event.Container.Runtime of the events (container.Docker);
	// container.Podman for podman's socket, which serves the same API.
	Runtime string
	Logger  *slog.Logger
}

// DefaultOptions returns the defaults the schema mirrors.
func DefaultOptions() Options {
	return Options{Socket: container.DefaultDockerSocket, Interval: 10 * time.Second, Timeout: 2 * time.Second,
		MaxContainers: 2048, Runtime: container.Docker}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Socket == "" {
		o.Socket = d.Socket
	}
	if o.Interval <= 0 {
		o.Interval = d.Interval
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.MaxContainers <= 0 {
		o.MaxContainers = d.MaxContainers
	}
	if o.Runtime == "" {
		o.Runtime = d.Runtime
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Stats are the inventory's counters, for status.
type Stats struct {
	Polls      uint64 // successful polls
	Errors     uint64 // failed polls and failed inspections
	LastError  string // of the last poll; empty when it succeeded
	NoDaemon   bool   // the last poll found no daemon listening (not an error)
	Daemon     string // "28.2.2", once known
	APIVersion string
	Running    int // containers tracked
	Untracked  int // running containers over MaxContainers
}

// Sensor polls the Docker Engine API for the running containers and
// sends an event.ContainerChanged per container added, modified (renamed,
// or a configuration change the daemon reports) or removed (stopped or
// deleted). It implements sensor.Sensor and only reads from the daemon.
//
// Each poll costs one list request; a container is inspected only when it
// first appears or its list entry changes, because the privileged flag,
// capabilities and PID mode are only in the inspect document.
//
// A host without docker is normal: a missing socket is reported by Live as
// "no docker daemon" and retried every interval without logging each
// attempt. Polls that fail leave the inventory as it was, so a daemon
// restart does not report every container as removed and added.
//
// Poll and Run must not be called concurrently; Live and Stats may be
// called from any goroutine.
type Sensor struct {
	o      Options
	c      *container.Client
	known  map[string]*tracked
	polled bool // a poll has succeeded: later containers are news
	// initial holds containers of the first poll that could not be
	// inspected then, so they still carry DetailInitial when they can.
	initial     map[string]bool
	needVersion bool   // ask /version before the next list (at start, after the daemon was gone)
	lastLogged  string // last error logged, so a persisting failure is logged once

	mu sync.Mutex
	st Stats
}

// tracked is what is remembered of one container between polls.
type tracked struct {
	listed string // fingerprint of its list entry: re-inspect when it changes
	info   info
}

// info is a container as the events describe it.
type info struct {
	id, name, image string
	attrs           map[string]string
}

// New returns an inventory sensor; zero options take defaults.
func New(o Options) *Sensor {
	o = o.withDefaults()
	return &Sensor{o: o, c: container.NewClient(o.Socket, o.Timeout), known: map[string]*tracked{},
		initial: map[string]bool{}, needVersion: true}
}

// Name is the sensor's name.
func (s *Sensor) Name() string { return SensorName }

// Run polls until ctx ends. Failed polls are retried at the next tick: the
// containers are live state, nothing is lost by waiting.
func (s *Sensor) Run(ctx context.Context, out chan<- sensor.Item) error {
	defer s.c.Close()
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		evs, _ := s.Poll(ctx, time.Now().Round(0))
		for i := range evs {
			select {
			case out <- sensor.Item{Event: &evs[i]}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Live reports how the inventory runs, for status. No daemon is not
// degraded: most hosts have none.
func (s *Sensor) Live() (degraded bool, detail string) {
	st := s.Stats()
	switch {
	case st.NoDaemon:
		return false, fmt.Sprintf("no %s daemon at %s; checking every %s", s.o.Runtime, s.o.Socket, s.o.Interval)
	case st.Polls == 0 && st.LastError == "":
		return false, "starting"
	case st.Polls == 0:
		return true, fmt.Sprintf("%s API at %s failing: %s", s.o.Runtime, s.o.Socket, st.LastError)
	}
	detail = fmt.Sprintf("%s %s (API %s) at %s: %d running containers, polled every %s",
		s.o.Runtime, st.Daemon, st.APIVersion, s.o.Socket, st.Running, s.o.Interval)
	if st.Untracked > 0 {
		degraded = true
		detail += fmt.Sprintf("; %d containers over the limit of %d not tracked", st.Untracked, s.o.MaxContainers)
	}
	if st.LastError != "" {
		degraded = true
		detail += "; last poll failed: " + st.LastError
	}
	return degraded, detail
}

// Stats returns a copy of the counters.
func (s *Sensor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *Sensor) setStats(f func(st *Stats)) {
	s.mu.Lock()
	f(&s.st)
	s.mu.Unlock()
}

// noDaemon tells "nothing listens on the socket" (no socket file, or a
// stale one left by a daemon that died) from a daemon that misbehaves.
func noDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// fail records a failed poll.
func (s *Sensor) fail(err error) {
	gone := noDaemon(err)
	if gone {
		// The daemon may come back upgraded: ask its version again.
		s.needVersion = true
	}
	s.setStats(func(st *Stats) {
		st.NoDaemon = gone
		if !gone {
			st.Errors++
			st.LastError = err.Error()
		}
	})
	if msg := err.Error(); msg != s.lastLogged {
		s.lastLogged = msg
		if gone {
			s.o.Logger.Debug("container inventory: no docker daemon", "socket", s.o.Socket)
		} else {
			s.o.Logger.Warn("container inventory: docker API failing", "socket", s.o.Socket, "err", err)
		}
	}
}

// Poll lists the running containers once, inspects the new and changed
// ones, and returns the events of what changed since the previous
// successful poll: added and modified first, then removed, each ordered by
// name and id. The first successful poll returns every running container
// as added, with Detail DetailInitial.
func (s *Sensor) Poll(ctx context.Context, now time.Time) ([]event.Event, error) {
	if s.needVersion {
		v, err := s.c.Version(ctx)
		if err != nil {
			s.fail(err)
			return nil, err
		}
		s.needVersion = false
		s.setStats(func(st *Stats) { st.Daemon, st.APIVersion = v.Version, v.APIVersion })
	}
	list, err := s.c.List(ctx)
	if err != nil {
		s.fail(err)
		return nil, err
	}
	first := !s.polled
	s.polled = true
	s.lastLogged = ""

	// Keep what is tracked, then admit new containers in id order up to
	// the bound, so the tracked set is stable across polls and one over
	// the bound is not reported as new again and again.
	slices.SortFunc(list, func(a, b container.Summary) int { return cmp.Compare(a.ID, b.ID) })
	kept := 0
	for i := range list {
		if s.known[list[i].ID] != nil {
			kept++
		}
	}
	room := max(s.o.MaxContainers-kept, 0)
	cur := map[string]bool{}
	var changed, gone []event.Event
	var inspectErr error
	untracked := 0
	for i := range list {
		e := &list[i]
		if e.ID == "" || cur[e.ID] {
			continue
		}
		t := s.known[e.ID]
		if t == nil {
			if room == 0 {
				untracked++
				continue
			}
			room--
		}
		cur[e.ID] = true
		fp := fingerprint(e)
		if t != nil && t.listed == fp {
			continue
		}
		d, err := s.c.Details(ctx, e.ID)
		switch {
		case errors.Is(err, container.ErrNotFound):
			// Removed between the list and the inspection.
			delete(cur, e.ID)
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Try again next poll; a tracked container keeps its
			// last known state meanwhile.
			inspectErr = err
			if first {
				s.initial[e.ID] = true
			}
			continue
		}
		ni := infoOf(d)
		switch {
		case t == nil:
			detail := ""
			if first || s.initial[e.ID] {
				detail = DetailInitial
				delete(s.initial, e.ID)
			}
			s.known[e.ID] = &tracked{listed: fp, info: ni}
			changed = append(changed, s.event(now, "added", detail, &ni, nil))
		case !maps.Equal(t.info.attrs, ni.attrs) || t.info.name != ni.name:
			before := t.info
			t.listed, t.info = fp, ni
			changed = append(changed, s.event(now, "modified", "", &ni, &before))
		default:
			t.listed = fp
		}
	}
	for id, t := range s.known {
		if !cur[id] {
			gone = append(gone, s.event(now, "removed", "", nil, &t.info))
			delete(s.known, id)
		}
	}
	for id := range s.initial {
		if !cur[id] {
			delete(s.initial, id)
		}
	}
	byName := func(a, b event.Event) int {
		return cmp.Or(cmp.Compare(a.Change.Name, b.Change.Name), cmp.Compare(a.Proc.Container.ID, b.Proc.Container.ID))
	}
	slices.SortFunc(changed, byName)
	slices.SortFunc(gone, byName)

	s.setStats(func(st *Stats) {
		st.Polls++
		st.NoDaemon = false
		st.LastError = ""
		if inspectErr != nil {
			st.Errors++
			st.LastError = inspectErr.Error()
		}
		st.Running, st.Untracked = len(s.known), untracked
	})
	return append(changed, gone...), inspectErr
}

// fingerprint is what of a list entry, if changed, warrants a new
// inspection: names, image and mounts, not the state or uptime.
func fingerprint(s *container.Summary) string {
	var b strings.Builder
	b.WriteString(strings.Join(s.Names, ","))
	b.WriteString("|" + s.Image + "|" + s.ImageID + "|" + s.HostConfig.NetworkMode)
	for _, m := range s.Mounts {
		fmt.Fprintf(&b, "|%s:%s:%s:%s:%t", m.Type, m.Name, m.Source, m.Destination, m.RW)
	}
	return b.String()
}

// infoOf turns an inspection into the event's attributes.
func infoOf(d container.Details) info {
	a := map[string]string{AttrID: d.ID, AttrPrivileged: fmt.Sprint(d.Privileged)}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(AttrImage, d.Image)
	set(AttrImageID, d.ImageID)
	set(AttrNetworkMode, d.NetworkMode)
	if d.PidMode != "" && d.PidMode != "private" {
		a[AttrPidMode] = d.PidMode
	}
	set(AttrCapAdd, strings.Join(normalizeCaps(d.CapAdd), ","))
	var binds, vols []string
	for _, m := range d.Mounts {
		switch m.Type {
		case "bind":
			binds = append(binds, escapeMountPath(m.Source)+":"+escapeMountPath(m.Destination)+":"+rwMode(m.RW))
		case "volume":
			vols = append(vols, m.Name)
		}
	}
	slices.Sort(binds)
	slices.Sort(vols)
	set(AttrMounts, strings.Join(binds, ","))
	set(AttrVolumes, strings.Join(slices.Compact(vols), ","))
	return info{id: d.ID, name: d.Name, image: d.Image, attrs: a}
}

// normalizeCaps returns capability names upper-case without the CAP_
// prefix, sorted and without duplicates: the daemon stores them as the
// user wrote them before 20.10 ("sys_admin", "SYS_ADMIN") and with the
// prefix since.
func normalizeCaps(caps []string) []string {
	var out []string
	for _, c := range caps {
		c = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
		if c != "" {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func rwMode(rw bool) string {
	if rw {
		return "rw"
	}
	return "ro"
}

// escapeMountPath percent-encodes the separators of AttrMounts.
func escapeMountPath(p string) string {
	return strings.NewReplacer("%", "%25", ",", "%2C", ":", "%3A").Replace(p)
}

// BindMount is one entry of AttrMounts.
type BindMount struct {
	Source, Destination string
	RW                  bool
}

// ParseMounts decodes AttrMounts; malformed entries are skipped.
func ParseMounts(attr string) []BindMount {
	var out []BindMount
	for e := range strings.SplitSeq(attr, ",") {
		f := strings.Split(e, ":")
		if len(f) != 3 {
			continue
		}
		src, err1 := url.PathUnescape(f[0])
		dst, err2 := url.PathUnescape(f[1])
		if err1 != nil || err2 != nil || src == "" {
			continue
		}
		out = append(out, BindMount{Source: src, Destination: dst, RW: f[2] == "rw"})
	}
	return out
}

// describe is the operator's one-line view of a container, for
// Change.Before and After.
func describe(i *info) string {
	a := i.attrs
	parts := []string{"image " + cmp.Or(a[AttrImage], "?")}
	if a[AttrPrivileged] == "true" {
		parts = append(parts, "privileged")
	}
	if v := a[AttrCapAdd]; v != "" {
		parts = append(parts, "cap_add "+v)
	}
	if v := a[AttrNetworkMode]; v != "" {
		parts = append(parts, "network "+v)
	}
	if v := a[AttrPidMode]; v != "" {
		parts = append(parts, "pid "+v)
	}
	if ms := ParseMounts(a[AttrMounts]); len(ms) > 0 {
		s := make([]string, len(ms))
		for k, m := range ms {
			s[k] = m.Source + ":" + m.Destination + ":" + rwMode(m.RW)
		}
		parts = append(parts, "mounts "+strings.Join(s, " "))
	}
	if v := a[AttrVolumes]; v != "" {
		parts = append(parts, "volumes "+v)
	}
	return strings.Join(parts, "; ")
}

// event builds one ContainerChanged event; cur is nil for a removal,
// before nil for an addition.
func (s *Sensor) event(now time.Time, op, detail string, cur, before *info) event.Event {
	i := cur
	if i == nil {
		i = before
	}
	c := &event.Change{What: WhatContainer, Op: op, Name: i.name, Attrs: maps.Clone(i.attrs)}
	if cur != nil {
		c.After = describe(cur)
	}
	if before != nil {
		c.Before = describe(before)
	}
	return event.Event{
		Time: now, Kind: event.ContainerChanged, Source: s.o.Runtime + ":" + s.o.Socket, Detail: detail,
		// The container is the entity the correlator keys on; no pid,
		// so the process table leaves the event alone.
		Proc:   &event.Process{Container: &event.Container{Runtime: s.o.Runtime, ID: i.id, Name: i.name, Image: i.image}},
		Change: c,
	}
}
