package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

// Options configure the users sensor. The zero value of a field means its
// default (DefaultOptions).
type Options struct {
	// Root is where the host's filesystem is ("/"); tests and scenarios
	// point it at a private copy.
	Root string
	// PrivilegedGroups are the groups whose new members are reported.
	PrivilegedGroups []string
	// Interval is the period of the stat-based check that backs up
	// fsnotify (missed events, no inotify, files on odd filesystems).
	Interval time.Duration
	// Debounce is how long to wait after a change notification before
	// reading: useradd rewrites passwd, shadow, group and gshadow in turn,
	// and one read of the final state gives one clean diff.
	Debounce time.Duration
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{Root: "/", PrivilegedGroups: []string{"sudo", "wheel", "adm", "root", "docker", "lxd"},
		Interval: 30 * time.Second, Debounce: 250 * time.Millisecond}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Root == "" {
		o.Root = d.Root
	}
	if o.PrivilegedGroups == nil {
		o.PrivilegedGroups = d.PrivilegedGroups
	}
	if o.Interval <= 0 {
		o.Interval = d.Interval
	}
	if o.Debounce <= 0 {
		o.Debounce = d.Debounce
	}
	return o
}

// Store persists a sensor's baseline across restarts, so changes made
// while the agent was down are reported when it starts. The agent backs
// it with its state database; without one the baseline lives in memory
// and a restart starts from the current state.
type Store interface {
	// LoadBaseline returns the stored baseline, or nil when there is none.
	LoadBaseline(ctx context.Context, name string) ([]byte, error)
	SaveBaseline(ctx context.Context, name string, data []byte) error
}

// SensorName is the users sensor's name (status, baseline key).
const SensorName = "users"

// Sensor watches the account database and sends an AccountChanged event
// for each semantic change. The state at start is the baseline and
// produces no event (unless a Store holds an older baseline).
type Sensor struct {
	Options Options
	Logger  *slog.Logger
	Store   Store

	// noNotify makes tests exercise the periodic check alone.
	noNotify bool

	mu sync.Mutex
	st sensorStatus
}

type sensorStatus struct {
	started   bool
	notify    string // "" when fsnotify works, else why not
	readErr   string
	reads     int
	changes   int
	shadowOK  bool
	badLines  int
	lastCheck time.Time
}

// Name is the sensor's name.
func (s *Sensor) Name() string { return SensorName }

// Live reports whether the sensor runs as intended, for status.
func (s *Sensor) Live() (degraded bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if !st.started {
		return false, "starting"
	}
	detail = fmt.Sprintf("%d reads, %d changes", st.reads, st.changes)
	if st.badLines > 0 {
		detail += fmt.Sprintf(", %d unparsable lines", st.badLines)
	}
	if st.notify != "" {
		degraded = true
		detail += "; polling only (" + st.notify + ")"
	}
	if !st.shadowOK {
		degraded = true
		detail += "; /etc/shadow unreadable: password changes not seen"
	}
	if st.readErr != "" {
		degraded = true
		detail += "; " + st.readErr
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
	base, err := ReadState(o.Root)
	s.noteRead(base, err)
	if base != nil {
		if err := s.restore(ctx, base, o, out); err != nil {
			return err
		}
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
	s.watch(w, o.Root, base, watched)
	// The first check always re-reads: a change between the read above
	// and a signature taken now would otherwise be folded into the
	// baseline unseen.
	sig := ""
	s.mu.Lock()
	s.st.started = true
	s.mu.Unlock()
	check := func() error {
		now := signature(o.Root, base)
		if base != nil && now == sig {
			return nil
		}
		cur, err := ReadState(o.Root)
		s.noteRead(cur, err)
		if err != nil {
			log.Warn("users: read failed", "err", err)
			return nil
		}
		sig = signature(o.Root, cur)
		if base != nil {
			if err := s.emit(ctx, out, Diff(base, cur, o.PrivilegedGroups)); err != nil {
				return err
			}
		}
		base = cur
		s.save(ctx, base)
		s.watch(w, o.Root, base, watched)
		return nil
	}
	loop := &sensor.Loop{Watcher: w, Interval: o.Interval, Debounce: o.Debounce, Check: check,
		Interesting: func(name string) bool { return interesting(o.Root, base, name) },
		NotifyLost:  s.setNotify, Logger: log.With("sensor", "users")}
	return loop.Run(ctx)
}

// restore diffs a stored baseline against the state at start, so changes
// made while the agent was down are reported, then stores the new one.
func (s *Sensor) restore(ctx context.Context, cur *State, o Options, out chan<- sensor.Item) error {
	if s.Store == nil {
		return nil
	}
	data, err := s.Store.LoadBaseline(ctx, SensorName)
	if err != nil {
		s.logger().Warn("users: loading baseline", "err", err)
	}
	var old State
	if err == nil && data != nil && json.Unmarshal(data, &old) == nil && old.Version == stateVersion {
		if err := s.emit(ctx, out, Diff(&old, cur, o.PrivilegedGroups)); err != nil {
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
		s.logger().Warn("users: saving baseline", "err", err)
	}
}

func (s *Sensor) emit(ctx context.Context, out chan<- sensor.Item, fs []Finding) error {
	now := time.Now()
	for _, f := range fs {
		ch := f.Change
		ev := &event.Event{Time: now, Kind: event.AccountChanged, Source: "file:" + ch.Path, Line: f.Line,
			User: f.User, Change: &ch}
		if ch.What == WhatPrivilegedGroup {
			ev.TargetUser = ch.After
		}
		select {
		case out <- sensor.Item{Event: ev}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.st.changes += len(fs)
	s.mu.Unlock()
	return nil
}

func (s *Sensor) noteRead(st *State, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.reads++
	s.st.lastCheck = time.Now()
	if err != nil {
		s.st.readErr = err.Error()
		return
	}
	s.st.readErr = ""
	s.st.shadowOK = st.ShadowRead
	s.st.badLines = len(st.Bad)
}

func (s *Sensor) setNotify(why string) {
	s.mu.Lock()
	s.st.notify = why
	s.mu.Unlock()
}

// trackedFiles are the host paths whose change means a re-read.
func trackedFiles(st *State) []string {
	fs := []string{PathPasswd, PathGroup, PathShadow, PathLoginDefs, PathSudoers}
	if st != nil {
		for _, f := range st.SudoFiles {
			if !slices.Contains(fs, f) {
				fs = append(fs, f)
			}
		}
	}
	return fs
}

// watch adds fsnotify watches on the directories holding tracked files
// (files are replaced by rename, so the directory is what to watch).
func (s *Sensor) watch(w *fsnotify.Watcher, root string, st *State, watched map[string]bool) {
	if w == nil {
		return
	}
	var dirs []string
	for _, f := range trackedFiles(st) {
		dirs = append(dirs, filepath.Dir(f))
	}
	if st != nil {
		dirs = append(dirs, st.SudoDirs...)
	}
	for _, d := range dirs {
		p := hostPath(root, d)
		if watched[p] {
			continue
		}
		if err := w.Add(p); err != nil {
			if !os.IsNotExist(err) {
				s.setNotify("watching " + d + ": " + err.Error())
			}
			continue
		}
		watched[p] = true
	}
}

// interesting reports whether a notification concerns a tracked file or
// an includedir (the rest of /etc changes all the time).
func interesting(root string, st *State, name string) bool {
	for _, f := range trackedFiles(st) {
		if hostPath(root, f) == name {
			return true
		}
	}
	if st != nil {
		dir := filepath.Dir(name)
		for _, d := range st.SudoDirs {
			// A file in an includedir, or the includedir itself created.
			if hostPath(root, d) == dir || hostPath(root, d) == name {
				return true
			}
		}
	}
	return false
}

// signature identifies the tracked files' versions by inode, size, mtime
// and ctime (a rewrite that keeps the size changes mtime; a rename
// changes the inode), and the includedirs by their mtime (a file added).
func signature(root string, st *State) string {
	var b []byte
	paths := trackedFiles(st)
	if st != nil {
		paths = append(paths, st.SudoDirs...)
	}
	for _, p := range paths {
		b = append(b, p...)
		fi, err := os.Stat(hostPath(root, p))
		if err != nil {
			b = append(b, " -\n"...)
			continue
		}
		b = fmt.Appendf(b, " %s\n", FileSignature(fi))
	}
	return string(b)
}
