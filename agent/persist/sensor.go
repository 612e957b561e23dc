package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

// Options configure the persistence sensor. Zero fields take their
// default (DefaultOptions).
type Options struct {
	// Root is where the host's filesystem is ("/").
	Root string
	// Interval is the period of the full re-inventory that backs up
	// fsnotify (unchanged files are only stat'ed).
	Interval time.Duration
	// Debounce is the wait after a notification before re-inventorying,
	// so a burst of writes gives one diff.
	Debounce time.Duration
	// SetuidPaths are the directories scanned for setuid/setgid files and
	// file capabilities, every SetuidInterval, up to SetuidMaxFiles
	// entries per scan.
	SetuidPaths    []string
	SetuidInterval time.Duration
	SetuidMaxFiles int
	// ProfileFiles are the shell startup files looked for in each home.
	ProfileFiles []string
	// AuthorizedKeysFiles mirror sshd's AuthorizedKeysFile: relative to
	// the home, or absolute with %h (home) and %u (user).
	AuthorizedKeysFiles []string
	// MaxHomes bounds the homes inventoried (a directory server's
	// thousands of accounts would otherwise mean thousands of watches).
	MaxHomes int
	// MaxFileBytes bounds what is read of one file; the rest is not
	// diffed (the event says truncated).
	MaxFileBytes int64
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		Root:                "/",
		Interval:            30 * time.Second,
		Debounce:            250 * time.Millisecond,
		SetuidPaths:         []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"},
		SetuidInterval:      10 * time.Minute,
		SetuidMaxFiles:      200000,
		ProfileFiles:        []string{".bashrc", ".profile", ".bash_profile", ".bash_login", ".zshrc"},
		AuthorizedKeysFiles: []string{".ssh/authorized_keys", ".ssh/authorized_keys2"},
		MaxHomes:            1000,
		MaxFileBytes:        1 << 20,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Root == "" {
		o.Root = d.Root
	}
	if o.Interval <= 0 {
		o.Interval = d.Interval
	}
	if o.Debounce <= 0 {
		o.Debounce = d.Debounce
	}
	if o.SetuidPaths == nil {
		o.SetuidPaths = d.SetuidPaths
	}
	if o.SetuidInterval <= 0 {
		o.SetuidInterval = d.SetuidInterval
	}
	if o.SetuidMaxFiles <= 0 {
		o.SetuidMaxFiles = d.SetuidMaxFiles
	}
	if o.ProfileFiles == nil {
		o.ProfileFiles = d.ProfileFiles
	}
	if o.AuthorizedKeysFiles == nil {
		o.AuthorizedKeysFiles = d.AuthorizedKeysFiles
	}
	if o.MaxHomes <= 0 {
		o.MaxHomes = d.MaxHomes
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = d.MaxFileBytes
	}
	return o
}

// Store persists the baseline across restarts (the same contract as
// accounts.Store; one implementation serves both).
type Store interface {
	LoadBaseline(ctx context.Context, name string) ([]byte, error)
	SaveBaseline(ctx context.Context, name string, data []byte) error
}

// SensorName is the persistence sensor's name.
const SensorName = "persistence"

// Sensor watches the persistence locations and sends a PersistChanged
// event per change; the inventory at start is the baseline.
type Sensor struct {
	Options Options
	Logger  *slog.Logger
	Store   Store

	// noNotify makes tests exercise the periodic pass alone.
	noNotify bool

	mu sync.Mutex
	st sensorStatus
}

type sensorStatus struct {
	started  bool
	notify   string
	passes   int
	changes  int
	entries  int
	watches  int
	errors   []string
	capped   bool
	lastScan time.Time
}

// Name is the sensor's name.
func (s *Sensor) Name() string { return SensorName }

// Live reports how the sensor runs, for status.
func (s *Sensor) Live() (degraded bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if !st.started {
		return false, "starting"
	}
	detail = fmt.Sprintf("%d entries, %d watches, %d passes, %d changes; setuid scan %s",
		st.entries, st.watches, st.passes, st.changes, st.lastScan.Format(time.RFC3339))
	if st.capped {
		degraded = true
		detail += " (stopped at the file limit)"
	}
	if st.notify != "" {
		degraded = true
		detail += "; polling only (" + st.notify + ")"
	}
	if len(st.errors) > 0 {
		detail += fmt.Sprintf("; %d unreadable: %s", len(st.errors), st.errors[0])
	}
	return degraded, detail
}

func (s *Sensor) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run watches until ctx ends.
func (s *Sensor) Run(ctx context.Context, out chan<- sensor.Item) error {
	o := s.Options.withDefaults()
	log := s.logger()
	inv := newInventory(o, nil)
	inv.run(true)
	base := inv.cur
	if err := s.restore(ctx, base, out); err != nil {
		return err
	}
	w, werr := fsnotify.NewWatcher()
	if s.noNotify && werr == nil {
		w.Close()
		w, werr = nil, errors.New("disabled")
	}
	if werr != nil {
		s.setNotify(werr.Error())
		w = nil
	} else {
		defer w.Close()
	}
	watched := map[string]bool{}
	s.watch(w, o, inv, watched)
	s.note(base, 0)
	pass := func() error {
		next := newInventory(o, base)
		next.run(time.Since(base.SetuidScan) >= o.SetuidInterval)
		fs := Diff(base, next.cur)
		if err := s.emit(ctx, out, fs); err != nil {
			return err
		}
		base, inv = next.cur, next
		s.watch(w, o, inv, watched)
		s.note(base, len(fs))
		if len(fs) > 0 {
			s.save(ctx, base)
		}
		return nil
	}
	loop := &sensor.Loop{Watcher: w, Interval: o.Interval, Debounce: o.Debounce, Check: pass,
		Interesting: func(name string) bool { return inv.interesting(s.hostPath(o, name)) },
		NotifyLost:  s.setNotify, Logger: log.With("sensor", "persistence")}
	return loop.Run(ctx)
}

// hostPath maps a path below Root back to the host path it stands for.
func (s *Sensor) hostPath(o Options, p string) string {
	if o.Root == "/" {
		return p
	}
	rel, err := filepath.Rel(o.Root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return "/" + filepath.ToSlash(rel)
}

// watch brings the fsnotify watches in line with the inventory's
// directories: new homes, a new ~/.ssh, a removed cron.d.
func (s *Sensor) watch(w *fsnotify.Watcher, o Options, inv *inventory, watched map[string]bool) {
	if w == nil {
		return
	}
	for d := range watched {
		if !inv.watch[d] {
			_ = w.Remove(inv.host(d)) // it may be gone already
			delete(watched, d)
		}
	}
	var failed []string
	for d := range inv.watch {
		if watched[d] {
			continue
		}
		if err := w.Add(inv.host(d)); err != nil {
			failed = append(failed, d+": "+err.Error())
			continue
		}
		watched[d] = true
	}
	s.mu.Lock()
	s.st.watches = len(watched)
	if len(failed) > 0 {
		// Most likely the inotify watch limit: the periodic pass still
		// covers these directories.
		s.st.notify = fmt.Sprintf("%d directories not watched, e.g. %s", len(failed), failed[0])
	} else if s.st.notify != "" && !strings.HasPrefix(s.st.notify, "disabled") && s.st.notify != "watcher closed" {
		s.st.notify = ""
	}
	s.mu.Unlock()
}

func (s *Sensor) restore(ctx context.Context, cur *State, out chan<- sensor.Item) error {
	if s.Store == nil {
		return nil
	}
	data, err := s.Store.LoadBaseline(ctx, SensorName)
	if err != nil {
		s.logger().Warn("persistence: loading baseline", "err", err)
	}
	var old State
	if err == nil && data != nil && json.Unmarshal(data, &old) == nil && old.Version == stateVersion && old.Entries != nil {
		if err := s.emit(ctx, out, Diff(&old, cur)); err != nil {
			return err
		}
	}
	s.save(ctx, cur)
	return nil
}

func (s *Sensor) save(ctx context.Context, st *State) {
	if s.Store == nil {
		return
	}
	data, err := json.Marshal(st)
	if err == nil {
		err = s.Store.SaveBaseline(ctx, SensorName, data)
	}
	if err != nil {
		s.logger().Warn("persistence: saving baseline", "err", err)
	}
}

func (s *Sensor) emit(ctx context.Context, out chan<- sensor.Item, fs []Finding) error {
	now := time.Now()
	for _, f := range fs {
		ch := f.Change
		line := ch.After
		if line == "" {
			line = ch.Before
		}
		ev := &event.Event{Time: now, Kind: event.PersistChanged, Source: "file:" + ch.Path, Line: line, User: f.User, Change: &ch}
		select {
		case out <- sensor.Item{Event: ev}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *Sensor) note(st *State, changes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.started = true
	s.st.passes++
	s.st.changes += changes
	s.st.entries = len(st.Entries)
	s.st.errors = st.Errors
	s.st.capped = st.SetuidCapped
	s.st.lastScan = st.SetuidScan
}

func (s *Sensor) setNotify(why string) {
	s.mu.Lock()
	s.st.notify = why
	s.mu.Unlock()
}
