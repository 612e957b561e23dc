package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/accounts"
	"github.com/picket-agent/picket/agent/container"
	"github.com/picket-agent/picket/agent/container/inventory"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/fim"
	"github.com/picket-agent/picket/agent/journal"
	"github.com/picket-agent/picket/agent/netsock"
	"github.com/picket-agent/picket/agent/persist"
	"github.com/picket-agent/picket/agent/proc"
	"github.com/picket-agent/picket/agent/proctable"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/agent/webshell"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// DefaultSensors builds the auth and web sensors the policy asks for,
// choosing journald or files for auth, and reports each one's state.
// Missing files are followed anyway (they may appear), but reported
// degraded; an unreadable file (no root) is reported off.
func DefaultSensors(log *slog.Logger) func(ctx context.Context, p *schema.Policy, st *state.Store) ([]sensor.Sensor, []SensorStatus) {
	return DefaultSensorsAt(log, "/")
}

// DefaultSensorsAt is DefaultSensors with the host's files (accounts,
// persistence) under root instead of "/".
func DefaultSensorsAt(log *slog.Logger, root string) func(ctx context.Context, p *schema.Policy, st *state.Store) ([]sensor.Sensor, []SensorStatus) {
	return func(ctx context.Context, p *schema.Policy, pos *state.Store) ([]sensor.Sensor, []SensorStatus) {
		var ss []sensor.Sensor
		var st []SensorStatus
		store := pos
		slog := log
		a := p.Sensors.Auth
		switch {
		case !a.Enabled:
			st = append(st, SensorStatus{Name: "auth", State: SensorOff, Detail: "disabled in config"})
		default:
			useJournal := a.Source == "journald"
			var jerr error
			if a.Source == "auto" {
				jerr = journal.Available(ctx, "")
				useJournal = jerr == nil
			}
			if useJournal {
				s := &sensor.AuthJournal{Identifiers: a.Identifiers, Logger: slog}
				var jp sensor.JournalPos
				if ok, err := pos.Offset(ctx, s.Name(), &jp); ok && err == nil {
					s.Cursor = jp.Cursor
				}
				ss = append(ss, s)
				st = append(st, SensorStatus{Name: "auth", State: SensorOK, Detail: "journald (" + strings.Join(a.Identifiers, ",") + ")"})
				break
			}
			s, status := fileSensor(ctx, "auth", a.Files, pos, func(path string, start tail.Position) sensor.Sensor {
				return &sensor.AuthFile{Path: path, Start: start, Logger: slog}
			})
			if jerr != nil && status.State != SensorOK {
				status.Detail += "; journald unavailable: " + jerr.Error()
			}
			ss = append(ss, s...)
			st = append(st, status)
		}
		w := p.Sensors.Web
		if !w.Enabled {
			st = append(st, SensorStatus{Name: "web", State: SensorOff, Detail: "disabled in config"})
		} else {
			var readable []string
			var notes []string
			for _, path := range w.Files {
				switch err := readable1(path); {
				case err == nil:
					readable = append(readable, path)
				case os.IsNotExist(err):
					// Followed anyway: it may appear (nginx installed later).
					readable = append(readable, path)
					notes = append(notes, path+" absent")
				default:
					notes = append(notes, fmt.Sprintf("%s unreadable (%v)", path, err))
				}
			}
			for _, path := range readable {
				s := &sensor.WebFile{Path: path, Format: w.Format, Logger: slog}
				var start tail.Position
				if ok, err := pos.Offset(ctx, s.Name(), &start); ok && err == nil {
					s.Start = start
				}
				ss = append(ss, s)
			}
			state := SensorOK
			if len(notes) > 0 {
				state = SensorDegraded
			}
			st = append(st, SensorStatus{Name: "web", State: state, Detail: fmt.Sprintf("following %d access log(s)%s", len(readable), noteList(notes))})
		}
		var procSensor *sensor.Process
		ps := p.Sensors.Process
		if !ps.Enabled {
			st = append(st, SensorStatus{Name: "process", State: SensorOff, Detail: "disabled in config"})
		} else {
			opts := proctable.Options{KeepExitedAncestors: true}
			if ps.DockerSocket != "" {
				// The resolver asks the daemon in the background and never
				// blocks an exec; a missing socket only costs a failed
				// request per minute.
				opts.Containers = container.Resolvers{container.NewResolver(container.ResolverOptions{
					Runtime: container.Docker, Inspector: container.NewClient(ps.DockerSocket, time.Second)})}
			}
			src := &proc.Source{Mode: ps.Mode, ScanInterval: ps.ScanInterval.D(), Logger: slog}
			procSensor = &sensor.Process{Source: src, Table: proctable.New(opts)}
			ss = append(ss, procSensor)
			// The real mode is known once the source runs (see Live).
			st = append(st, SensorStatus{Name: "process", State: SensorOK, Detail: "starting (mode " + ps.Mode + ")"})
		}
		if ns := p.Sensors.Network; !ns.Enabled {
			st = append(st, SensorStatus{Name: "network", State: SensorOff, Detail: "disabled in config"})
		} else {
			o := netsock.Options{Interval: ns.Interval.D(), Conntrack: true, Logger: slog}
			if procSensor != nil {
				o.Enrich = procSensor.Enrich
			}
			ss = append(ss, netsock.New(o))
			st = append(st, SensorStatus{Name: "network", State: SensorOK, Detail: "starting"})
		}
		if fs := p.Sensors.Files; !fs.Enabled {
			st = append(st, SensorStatus{Name: "files", State: SensorOff, Detail: "disabled in config"})
		} else {
			o := fim.DefaultOptions()
			if len(fs.Roots) > 0 {
				o.Roots = fs.Roots
			}
			o.WebRoots, o.RateMBps, o.Interval, o.Logger = fs.WebRoots, fs.RateMBps, fs.Rescan.D(), slog
			o.Roots, o.WebRoots = under(root, o.Roots), under(root, o.WebRoots)
			ss = append(ss, fim.New(store, o))
			st = append(st, SensorStatus{Name: "files", State: SensorOK, Detail: "starting"})
		}
		if cs := p.Sensors.Containers; !cs.Enabled || p.Sensors.Process.DockerSocket == "" {
			st = append(st, SensorStatus{Name: "containers", State: SensorOff, Detail: "disabled in config"})
		} else {
			ss = append(ss, inventory.New(inventory.Options{Socket: p.Sensors.Process.DockerSocket, Interval: cs.Interval.D(), Logger: slog}))
			st = append(st, SensorStatus{Name: "containers", State: SensorOK, Detail: "starting"})
		}
		baselines := &baselineStore{st: store}
		if us := p.Sensors.Users; !us.Enabled {
			st = append(st, SensorStatus{Name: "users", State: SensorOff, Detail: "disabled in config"})
		} else {
			o := accounts.DefaultOptions()
			o.PrivilegedGroups, o.Root = us.PrivilegedGroups, root
			ss = append(ss, &accounts.Sensor{Options: o, Logger: slog, Store: baselines})
			st = append(st, SensorStatus{Name: "users", State: SensorOK, Detail: "starting"})
		}
		if ps := p.Sensors.Persist; !ps.Enabled {
			st = append(st, SensorStatus{Name: "persistence", State: SensorOff, Detail: "disabled in config"})
		} else {
			o := persist.DefaultOptions()
			o.SetuidInterval, o.Root = ps.SetuidInterval.D(), root
			ss = append(ss, &persist.Sensor{Options: o, Logger: slog, Store: baselines})
			st = append(st, SensorStatus{Name: "persistence", State: SensorOK, Detail: "starting"})
		}
		return ss, st
	}
}

// fileSensor picks the first existing readable file of paths (auth.log on
// Debian, secure on RHEL); if none exists it follows the first, waiting
// for it.
func fileSensor(ctx context.Context, name string, paths []string, pos Positions, mk func(string, tail.Position) sensor.Sensor) ([]sensor.Sensor, SensorStatus) {
	var notes []string
	for _, path := range paths {
		err := readable1(path)
		if err == nil {
			var start tail.Position
			s := mk(path, tail.Position{})
			if ok, err := pos.Offset(ctx, s.Name(), &start); ok && err == nil {
				s = mk(path, start)
			}
			return []sensor.Sensor{s}, SensorStatus{Name: name, State: SensorOK, Detail: "file " + path}
		}
		if os.IsNotExist(err) {
			notes = append(notes, path+" absent")
		} else {
			notes = append(notes, fmt.Sprintf("%s unreadable (%v)", path, err))
		}
	}
	if len(paths) == 0 {
		return nil, SensorStatus{Name: name, State: SensorOff, Detail: "no files configured"}
	}
	// Nothing readable: wait for the first to appear if absent, else off.
	if err := readable1(paths[0]); os.IsNotExist(err) {
		return []sensor.Sensor{mk(paths[0], tail.Position{})}, SensorStatus{Name: name, State: SensorDegraded,
			Detail: "waiting for " + paths[0] + noteList(notes)}
	}
	return nil, SensorStatus{Name: name, State: SensorOff, Detail: "no readable source" + noteList(notes)}
}

func readable1(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func noteList(n []string) string {
	if len(n) == 0 {
		return ""
	}
	return " (" + strings.Join(n, "; ") + ")"
}

// DefaultDetectors builds the detectors that live with their sensors, for
// a policy (called again on every config application).
func DefaultDetectors(p *schema.Policy) []detect.Detector { return DefaultDetectorsAt("/")(p) }

// under places absolute paths under root (the host's files seen from a
// container, or a test's private copy); "/" leaves them as they are.
func under(root string, paths []string) []string {
	if root == "" || root == "/" {
		return paths
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Join(root, p)
	}
	return out
}

// DefaultDetectorsAt is DefaultDetectors for sensors reading the host's
// files under root (paths in events carry the root).
func DefaultDetectorsAt(root string) func(p *schema.Policy) []detect.Detector {
	return func(p *schema.Policy) []detect.Detector { return defaultDetectors(p, root) }
}

func defaultDetectors(p *schema.Policy, root string) []detect.Detector {
	var out []detect.Detector
	if n := p.Detectors.NetworkInvariants; n.Enabled {
		o := netsock.DefaultDetectorOptions()
		o.DBServers, o.WebServers = p.Processes.DBServers, p.Processes.WebServers
		o.DBEgressWeight, o.NewListenerWeight, o.WebEgressWeight = n.DBEgressWeight, n.NewListenerWeight, n.WebEgressWeight
		o.ListenerPorts, o.ListenerProcesses = n.ListenerPorts, n.ListenerProcesses
		o.ToolWeight, o.Tools = n.ToolWeight, n.Tools
		o.ScanWeight, o.ScanPorts, o.ScanHosts, o.ScanWindow = n.ScanWeight, n.ScanPorts, n.ScanHosts, n.ScanWindow.D()
		out = append(out, netsock.NewDetector(o))
	}
	if p.Sensors.Users.Enabled {
		out = append(out, accounts.NewDetector(accounts.DefaultDetectorOptions()))
	}
	if p.Sensors.Containers.Enabled {
		out = append(out, inventory.NewDetector(inventory.DefaultDetectorOptions()))
	}
	if p.Sensors.Persist.Enabled {
		out = append(out, persist.NewDetector(persist.DefaultDetectorOptions()))
	}
	if fs := p.Sensors.Files; fs.Enabled {
		c := webshell.Config{WebRoots: under(root, fs.WebRoots), WebUsers: fs.WebUsers, Watched: under(root, webshell.DefaultWatched()),
			WebshellWeight: 70, ChangedWeight: 10}
		out = append(out, webshell.NewDetector(c))
	}
	return out
}

// baselineStore keeps the users and persistence sensors' baselines in
// state, so changes made while the agent was down are reported at start.
type baselineStore struct{ st *state.Store }

func (b *baselineStore) LoadBaseline(ctx context.Context, name string) ([]byte, error) {
	raw, ok, err := b.st.Meta(ctx, "baseline_snapshot:"+name)
	if err != nil || !ok {
		return nil, err
	}
	return []byte(raw), nil
}

func (b *baselineStore) SaveBaseline(ctx context.Context, name string, data []byte) error {
	return b.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMeta(ctx, "baseline_snapshot:"+name, string(data)) })
}

// RestartNeeded names the sensor sections ("sensors.auth", ...) whose
// settings differ between built, the policy the running sensors were made
// from, and p. Sensors read their settings once, when they are built
// (sources, files, intervals, sockets); the detectors that come with them
// follow every applied policy. Empty and missing lists compare equal: a
// policy stored as JSON and the same policy loaded from CUE are the same.
func RestartNeeded(built, p *schema.Policy) []string {
	if built == nil || p == nil {
		return nil
	}
	a, b := reflect.ValueOf(built.Sensors), reflect.ValueOf(p.Sensors)
	var out []string
	for i := range a.NumField() {
		if !sameSetting(a.Field(i), b.Field(i)) {
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
			out = append(out, "sensors."+name)
		}
	}
	return out
}

func sameSetting(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameSetting(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			v := b.MapIndex(k)
			if !v.IsValid() || !sameSetting(a.MapIndex(k), v) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameSetting(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameSetting(a.Elem(), b.Elem())
	}
	return a.Equal(b)
}
