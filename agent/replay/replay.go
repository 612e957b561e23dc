// Package replay runs the detection pipeline over log files as fast as it
// can, taking every event's time from its line. `picket replay` uses it to
// show what the agent would have done with a log, and the benchmarks use it
// to measure throughput. The same input always yields the same incidents.
package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/picket-agent/picket/agent/authlog"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/logtime"
	"github.com/picket-agent/picket/agent/pipeline"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/weblog"
	"github.com/picket-agent/picket/schema"
)

// Kind of input file.
const (
	Auth = "auth"
	Web  = "web"
)

// Input is one file to replay.
type Input struct {
	Path string
	Kind string // Auth or Web
}

// Options for a replay.
type Options struct {
	Policy *schema.Policy
	// Year anchors year-less syslog timestamps (0: the file's mtime).
	Year int
	// Location of year-less timestamps (nil: time.Local).
	Location *time.Location
	// WebFormat: auto | combined | common | json.
	WebFormat string
}

// Result is what the replay found.
type Result struct {
	Incidents []*correlate.Incident
	Plans     map[int64][]respond.Plan
	Lines     int64
	Events    int64
	Unparsed  int64 // lines with a syslog header we could not read, or web lines we could not parse
	Signals   int64
	PerFile   []FileStats
}

// FileStats counts one input.
type FileStats struct {
	Path     string `json:"path"`
	Kind     string `json:"kind"`
	Lines    int64  `json:"lines"`
	Events   int64  `json:"events"`
	Unparsed int64  `json:"unparsed"`
}

// tickEvery matches the live agent's heartbeat.
const tickEvery = 5 * time.Second

// maxLine bounds one line; longer lines are cut (and still parsed).
const maxLine = 64 << 10

// source yields events of one file in order.
type source struct {
	in    Input
	f     *os.File
	r     *bufio.Reader
	auth  *authlog.Parser
	web   *weblog.Parser
	next  event.Event
	ok    bool
	stats *FileStats
}

func (s *source) advance() error {
	for {
		line, err := readLine(s.r)
		if err == io.EOF {
			s.ok = false
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay: read %s: %w", s.in.Path, err)
		}
		s.stats.Lines++
		var ev event.Event
		var perr error
		if s.auth != nil {
			ev, perr = s.auth.ParseLine(line)
			if errors.Is(perr, authlog.ErrNotAuth) {
				continue
			}
		} else {
			ev, perr = s.web.ParseLine(line)
		}
		if perr != nil {
			s.stats.Unparsed++
			continue
		}
		s.stats.Events++
		s.next, s.ok = ev, true
		return nil
	}
}

// readLine returns the next line without its newline, cut at maxLine.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(b) > 0) {
		return string(trimNL(b)), nil
	}
	if err == bufio.ErrBufferFull {
		line := string(b)
		for err == bufio.ErrBufferFull {
			_, err = r.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return "", err
		}
		return line, nil
	}
	return "", err
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Run replays inputs. Events of several files are merged by time (stable:
// ties keep file order), so an auth log and a web log interleave as they
// happened.
func Run(ctx context.Context, inputs []Input, o Options) (*Result, error) {
	if o.Policy == nil {
		return nil, errors.New("replay: no policy")
	}
	pl, err := pipeline.New(o.Policy, pipeline.Options{})
	if err != nil {
		return nil, err
	}
	res := &Result{Plans: map[int64][]respond.Plan{}}
	res.PerFile = make([]FileStats, len(inputs))
	var srcs []*source
	defer func() {
		for _, s := range srcs {
			s.f.Close()
		}
	}()
	for i, in := range inputs {
		f, err := os.Open(in.Path)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		s := &source{in: in, f: f, r: bufio.NewReaderSize(f, maxLine), stats: &res.PerFile[i]}
		srcs = append(srcs, s)
		res.PerFile[i] = FileStats{Path: in.Path, Kind: in.Kind}
		switch in.Kind {
		case Auth:
			ref := time.Now()
			if o.Year != 0 {
				ref = time.Date(o.Year, time.December, 31, 23, 59, 59, 0, time.UTC)
			} else if fi, err := f.Stat(); err == nil {
				ref = fi.ModTime()
			}
			s.auth = &authlog.Parser{Source: "file:" + in.Path, Years: logtime.NewYears(ref, o.Location)}
		case Web:
			s.web = &weblog.Parser{Format: o.WebFormat, Source: "file:" + in.Path}
		default:
			return nil, fmt.Errorf("replay: unknown input kind %q", in.Kind)
		}
		if err := s.advance(); err != nil {
			return nil, err
		}
	}
	latest := map[int64]*correlate.Incident{}
	collect := func() {
		b := pl.Take()
		for _, in := range b.Incidents {
			// A copy: the pipeline summarises incidents it no longer
			// keeps whole (their signals leave memory), and a summarised
			// one's batch holds only its newest signals, which extend
			// the story collected so far.
			cp := *in
			if prev := latest[in.ID]; prev != nil && in.Summarised > 0 {
				cp.Signals = append(append([]signal.Signal(nil), prev.Signals...), in.Signals...)
			}
			latest[in.ID] = &cp
		}
		for _, p := range b.Plans {
			res.Plans[p.Incident] = append(res.Plans[p.Incident], p)
		}
		res.Signals += int64(b.Signals)
	}
	n := 0
	var lastTick time.Time
	for {
		var best *source
		for _, s := range srcs {
			if s.ok && (best == nil || s.next.Time.Before(best.next.Time)) {
				best = s
			}
		}
		if best == nil {
			break
		}
		ev := best.next
		// Tick on event time as the live agent ticks on the clock, so
		// episodes settle and incidents close exactly as they would live.
		if ev.Time.Sub(lastTick) >= tickEvery {
			pl.Tick(ev.Time)
			lastTick = ev.Time
		}
		pl.Process(&ev)
		if err := best.advance(); err != nil {
			return nil, err
		}
		if n++; n%4096 == 0 {
			collect()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	pl.Flush()
	collect()
	for _, in := range latest {
		res.Incidents = append(res.Incidents, in)
	}
	sort.Slice(res.Incidents, func(i, j int) bool { return res.Incidents[i].ID < res.Incidents[j].ID })
	for _, fs := range res.PerFile {
		res.Lines += fs.Lines
		res.Events += fs.Events
		res.Unparsed += fs.Unparsed
	}
	return res, nil
}
