// Package sensor turns the host's log streams into events for the agent's
// pipeline: the auth sensor (journald or an auth log file) and the web
// access-log sensor. Each sensor sends Items on a channel; an Item carries
// the read position to persist once its event has been processed, so the
// agent commits events' effects and offsets in one transaction and a
// restart neither re-reads nor skips.
package sensor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/picket-agent/picket/agent/authlog"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/journal"
	"github.com/picket-agent/picket/agent/logtime"
	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/agent/weblog"
)

// Item is one line's worth of sensor output.
type Item struct {
	// Source is the offset key in state ("auth:file:/var/log/auth.log").
	Source string
	// Pos is what to persist for Source after processing (a tail.Position
	// or a JournalPos).
	Pos any
	// Event is nil when the line carried nothing of interest.
	Event *event.Event
	// Unparsed marks a line that could not be parsed (counted, skipped).
	Unparsed bool
}

// JournalPos is the persisted position of a journald reader.
type JournalPos struct {
	Cursor string `json:"cursor"`
}

// Sensor is one running input.
type Sensor interface {
	Name() string
	Run(ctx context.Context, out chan<- Item) error
}

func send(ctx context.Context, out chan<- Item, it Item) error {
	select {
	case out <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AuthFile follows an auth log file (/var/log/auth.log, /var/log/secure).
type AuthFile struct {
	Path   string
	Start  tail.Position
	Poll   time.Duration
	Logger *slog.Logger
}

// Name is the offset key.
func (s *AuthFile) Name() string { return "auth:file:" + s.Path }

// Run follows the file until ctx ends.
func (s *AuthFile) Run(ctx context.Context, out chan<- Item) error {
	p := &authlog.Parser{Source: "file:" + s.Path, Years: logtime.NewYears(time.Now(), nil)}
	f := &tail.Follower{Path: s.Path, Start: s.Start, StartAtEnd: true, Poll: s.Poll, Logger: s.Logger}
	name := s.Name()
	return f.Run(ctx, func(l tail.Line) error {
		it := Item{Source: name, Pos: l.Pos}
		ev, err := p.ParseLine(l.Text)
		switch {
		case err == nil:
			it.Event = &ev
		case errors.Is(err, authlog.ErrNotAuth):
		default:
			it.Unparsed = true
		}
		return send(ctx, out, it)
	})
}

// AuthJournal reads sshd, sudo, su and account tools from journald.
type AuthJournal struct {
	Journalctl  string
	Directory   string
	Identifiers []string
	Cursor      string
	Logger      *slog.Logger
}

// Name is the offset key.
func (s *AuthJournal) Name() string { return "auth:journald" }

// Run reads the journal until ctx ends.
func (s *AuthJournal) Run(ctx context.Context, out chan<- Item) error {
	var p authlog.Parser
	p.Source = "journald"
	r := &journal.Reader{Journalctl: s.Journalctl, Directory: s.Directory, Identifiers: s.Identifiers, Cursor: s.Cursor, Logger: s.Logger}
	name := s.Name()
	return r.Run(ctx, func(e journal.Entry) error {
		it := Item{Source: name, Pos: JournalPos{Cursor: e.Cursor}}
		ev, err := p.ParseMessage(e.Time, e.Host, e.Identifier, e.PID, e.Message)
		switch {
		case err == nil:
			it.Event = &ev
		case errors.Is(err, authlog.ErrNotAuth):
		default:
			it.Unparsed = true
		}
		return send(ctx, out, it)
	})
}

// WebFile follows a web server access log.
type WebFile struct {
	Path   string
	Format string
	Start  tail.Position
	Poll   time.Duration
	Logger *slog.Logger
}

// Name is the offset key.
func (s *WebFile) Name() string { return "web:file:" + s.Path }

// Run follows the file until ctx ends.
func (s *WebFile) Run(ctx context.Context, out chan<- Item) error {
	p := &weblog.Parser{Format: s.Format, Source: "file:" + s.Path}
	f := &tail.Follower{Path: s.Path, Start: s.Start, StartAtEnd: true, Poll: s.Poll, Logger: s.Logger}
	name := s.Name()
	return f.Run(ctx, func(l tail.Line) error {
		it := Item{Source: name, Pos: l.Pos}
		if ev, err := p.ParseLine(l.Text); err == nil {
			it.Event = &ev
		} else {
			it.Unparsed = true
		}
		return send(ctx, out, it)
	})
}
