package proc

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// Modes of a Source.
const (
	ModeAuto      = "auto"
	ModeConnector = "connector"
	ModeScan      = "scan"
)

// Event.Detail values on events found by reading /proc rather than reported
// by the kernel.
const (
	// DetailInitial: the process was running when the sensor started.
	DetailInitial = "initial"
	// DetailRescan: found by the full rescan that follows lost events.
	DetailRescan = "rescan"
	// DetailScan: found by the periodic scan (scan mode); processes that
	// lived less than the interval were missed, and an exec in place is
	// seen only as a change of comm.
	DetailScan = "scan"
)

// Source strings on events.
const (
	sourceConnector = "proc:connector"
	sourceScan      = "proc:scan"
)

// minRescanGap rate-limits rescans: under an exec storm that overflows the
// buffer continuously, back-to-back rescans (a full /proc read each) would
// only make the receive loop fall further behind.
const minRescanGap = time.Second

// Source is the process sensor. Set the fields, then call Run once; Stats
// and ActiveMode may be called from any goroutine meanwhile.
type Source struct {
	// ProcRoot is where procfs is mounted ("/proc" when empty).
	ProcRoot string
	// Mode is auto (connector, falling back to scan), connector or scan.
	Mode string
	// ScanInterval is the scan-mode period (default 1 s).
	ScanInterval time.Duration
	// PasswdPath resolves uids to names ("/etc/passwd" when empty).
	PasswdPath string
	// RcvBuf is the connector receive buffer in bytes (default 16 MiB).
	RcvBuf int
	Logger *slog.Logger

	active atomic.Value // string: the mode actually running
	stats  counters
}

// Stats are the sensor's counters since Run started.
type Stats struct {
	Mode string `json:"mode"`
	// Events emitted; Execs, Forks and Exits by kind.
	Events, Execs, Forks, Exits uint64
	// Lost: kernel events dropped (sequence gaps); Overflows: ENOBUFS
	// reports; Rescans: full /proc rescans that followed.
	Lost, Overflows, Rescans uint64
	// Partial: exec events whose process was gone before it was fully
	// read; ReadRaces: /proc reads that found the process gone (ENOENT,
	// ESRCH) or a zombie, scans included.
	Partial, ReadRaces uint64
}

type counters struct {
	events, execs, forks, exits        atomic.Uint64
	lost, overflows, rescans, partials atomic.Uint64
	reader                             atomic.Pointer[Reader]
}

// Stats returns a snapshot of the counters.
func (s *Source) Stats() Stats {
	st := Stats{
		Mode:      s.ActiveMode(),
		Events:    s.stats.events.Load(),
		Execs:     s.stats.execs.Load(),
		Forks:     s.stats.forks.Load(),
		Exits:     s.stats.exits.Load(),
		Lost:      s.stats.lost.Load(),
		Overflows: s.stats.overflows.Load(),
		Rescans:   s.stats.rescans.Load(),
		Partial:   s.stats.partials.Load(),
	}
	if r := s.stats.reader.Load(); r != nil {
		st.ReadRaces = r.Races()
	}
	return st
}

// ActiveMode is the mode running ("connector" or "scan"), "" before Run
// has chosen. (Mode is the configured field.)
func (s *Source) ActiveMode() string {
	m, _ := s.active.Load().(string)
	return m
}

func (s *Source) logger() *slog.Logger {
	l := s.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With(slog.String("subsystem", "proc"))
}

func (s *Source) newReader() *Reader {
	r := NewReader(s.ProcRoot, NewUsers(s.PasswdPath))
	s.stats.reader.Store(r)
	return r
}

// emitter counts and forwards events; it is used from the Run goroutine
// only.
type emitter struct {
	s    *Source
	emit func(event.Event)
}

func (e *emitter) send(ev event.Event) {
	c := &e.s.stats
	c.events.Add(1)
	switch ev.Kind {
	case event.ProcExec:
		c.execs.Add(1)
		if ev.Proc != nil && ev.Proc.Partial {
			c.partials.Add(1)
		}
	case event.ProcFork:
		c.forks.Add(1)
	case event.ProcExit:
		c.exits.Add(1)
	}
	e.emit(ev)
}

func execEvent(t time.Time, source, detail string, p *event.Process) event.Event {
	return event.Event{Time: t, Kind: event.ProcExec, Source: source, Detail: detail,
		PID: p.PID, Program: p.Comm, User: p.User, Proc: p}
}

// live is what the sensor remembers of a running process: enough to
// recognise pid reuse (start time) and an exec in place (comm) in a scan,
// and to fill exit events. One entry per live process; exits remove it and
// rescans prune what lost exits left behind.
type live struct {
	start uint64
	ppid  int
	comm  string
}

// scanner diffs /proc listings against what it has seen.
type scanner struct {
	r      *Reader
	root   string
	known  map[int]live
	seen   map[int]bool
	buf    []byte
	source string
}

func newScanner(r *Reader, source string) *scanner {
	return &scanner{r: r, root: r.procRoot, known: map[int]live{}, seen: map[int]bool{},
		buf: make([]byte, 1024), source: source}
}

// listPIDs returns the numeric entries of procRoot: thread-group leaders
// only, since readdir of /proc does not list threads.
func listPIDs(root string) ([]int, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// scan lists /proc and emits events with the given detail. With all set
// (initial scan, rescan) every live process is read and emitted, so the
// process table can refresh what lost events hid; otherwise (periodic
// scan) only processes new since the last scan, or whose start time or
// comm changed, are read. Processes remembered but no longer listed are
// emitted as exits either way.
func (sc *scanner) scan(detail string, all bool, send func(event.Event)) error {
	pids, err := listPIDs(sc.root)
	if err != nil {
		return err
	}
	now := time.Now().Round(0) // wall clock only, like kernel-stamped events
	clear(sc.seen)
	for _, pid := range pids {
		old, had := sc.known[pid]
		if !all && had {
			// Cheap check first: one stat read per known process.
			n, err := readFile(sc.root+"/"+strconv.Itoa(pid)+"/stat", sc.buf)
			if err != nil {
				continue // exited since the listing: the next scan reports it
			}
			st, err := parseStat(sc.buf[:n])
			if err == nil && st.start == old.start && st.comm == old.comm {
				sc.seen[pid] = true
				continue
			}
		}
		p, err := sc.r.Read(pid)
		if err != nil || (p.Partial && p.StartTime == 0) {
			continue // gone before it could be identified
		}
		sc.seen[pid] = true
		if had && old.start != p.StartTime {
			// pid reused between two scans: the old process exited.
			send(exitEvent(now, sc.source, detail, pid, old))
		}
		sc.known[pid] = live{start: p.StartTime, ppid: p.PPID, comm: p.Comm}
		send(execEvent(now, sc.source, detail, &p))
	}
	for pid, l := range sc.known {
		if !sc.seen[pid] {
			delete(sc.known, pid)
			send(exitEvent(now, sc.source, detail, pid, l))
		}
	}
	return nil
}

func exitEvent(t time.Time, source, detail string, pid int, l live) event.Event {
	p := &event.Process{PID: pid, PPID: l.ppid, StartTime: l.start, Comm: l.comm}
	return event.Event{Time: t, Kind: event.ProcExit, Source: source, Detail: detail,
		PID: pid, Program: l.comm, Proc: p}
}

// runScan is scan mode: an initial scan, then one every ScanInterval.
func (s *Source) runScan(ctx context.Context, r *Reader, em *emitter) error {
	s.active.Store(ModeScan)
	interval := s.ScanInterval
	if interval <= 0 {
		interval = time.Second
	}
	sc := newScanner(r, sourceScan)
	if err := sc.scan(DetailInitial, true, em.send); err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := sc.scan(DetailScan, false, em.send); err != nil {
				return err
			}
		}
	}
}
