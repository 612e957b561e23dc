package sensor

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Loop is the shape of a sensor that re-reads a set of files when they
// change (users, persistence): a check on every change notification,
// debounced so a burst of writes (useradd rewriting four files) gives one
// re-read, and on a periodic tick that backs up notifications (missed
// events, file systems without inotify).
type Loop struct {
	// Watcher delivers change notifications; nil means periodic checks only.
	Watcher  *fsnotify.Watcher
	Interval time.Duration
	Debounce time.Duration
	// Interesting says whether a notification for name warrants a check.
	Interesting func(name string) bool
	// Check re-reads and reports; an error ends Run.
	Check func() error
	// NotifyLost is told when notifications stop (the watcher closed).
	NotifyLost func(why string)
	Logger     *slog.Logger
}

// Run checks until ctx ends or Check fails.
func (l *Loop) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if l.Watcher != nil {
		events, errs = l.Watcher.Events, l.Watcher.Errors
	}
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	var debounce <-chan time.Time
	check := func() error {
		debounce = nil
		return l.Check()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				if l.NotifyLost != nil {
					l.NotifyLost("watcher closed")
				}
				continue
			}
			if debounce == nil && l.Interesting(ev.Name) {
				debounce = time.After(l.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow loses events: check now rather than trust them.
			if l.Logger != nil {
				l.Logger.Warn("fsnotify", "err", err)
			}
			if debounce == nil {
				debounce = time.After(l.Debounce)
			}
		case <-debounce:
			if err := check(); err != nil {
				return err
			}
		case <-tick.C:
			if err := check(); err != nil {
				return err
			}
		}
	}
}
