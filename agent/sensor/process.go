package sensor

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/proc"
	"github.com/picket-agent/picket/agent/proctable"
)

// Process is the process sensor: the proc source's events (netlink proc
// connector, or /proc scans) go through the process table, which fills in
// each exec's lineage and container; execs are then sent on to the
// detectors. Forks and exits only maintain the table.
type Process struct {
	Source *proc.Source
	Table  *proctable.Table
	// mu guards Table: the source emits from its receive loop and its
	// scanner, and other sensors enrich their events from the table.
	mu sync.Mutex
	// Self is the agent's pid (0: os.Getpid()): the agent and the
	// processes it runs (journalctl, git) are never reported — it must not
	// act on itself.
	Self int
}

// Name is the sensor's name (it has no offset: processes are live state).
func (s *Process) Name() string { return "process" }

// Run senses until ctx ends.
func (s *Process) Run(ctx context.Context, out chan<- Item) error {
	return s.Source.Run(ctx, func(ev event.Event) {
		s.mu.Lock()
		known := false
		if ev.Kind == event.ProcExec && ev.Proc != nil && ev.Detail == proc.DetailRescan {
			// A rescan after lost events re-announces every process: only
			// the ones the table did not know are news for the detectors.
			if old, ok := s.Table.Get(ev.Proc.PID); ok && old.StartTime == ev.Proc.StartTime {
				known = true
			}
		}
		s.Table.Observe(&ev)
		s.mu.Unlock()
		if ev.Kind != event.ProcExec || known || s.own(ev.Proc) {
			return
		}
		select {
		case out <- Item{Event: &ev}:
		case <-ctx.Done():
		}
	})
}

// Enrich completes a process another sensor saw (the owner of a socket)
// with its lineage and container from the table.
func (s *Process) Enrich(p *event.Process) {
	if p == nil || p.PID == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if known, ok := s.Table.Get(p.PID); ok && (p.StartTime == 0 || known.StartTime == p.StartTime) {
		if p.Container == nil {
			p.Container = known.Container
		}
	}
	if p.Lineage == nil {
		p.Lineage = s.Table.Lineage(p.PID)
	}
}

func (s *Process) own(p *event.Process) bool {
	if p == nil {
		return false
	}
	self := s.Self
	if self == 0 {
		self = os.Getpid()
	}
	if p.PID == self || p.PPID == self {
		return true
	}
	for _, a := range p.Lineage {
		if a.PID == self {
			return true
		}
	}
	return false
}

// Live reports the mode the source actually runs in and its losses, for
// status (the choice between connector and scan is made at run time).
func (s *Process) Live() (degraded bool, detail string) {
	st := s.Source.Stats()
	ts := s.Table.Stats()
	switch st.Mode {
	case "":
		return false, "starting"
	case proc.ModeScan:
		degraded = true
		detail = "/proc scan (no proc connector here: short-lived processes are missed)"
	default:
		detail = "netlink proc connector"
	}
	detail += fmt.Sprintf("; %d execs, %d lost events, %d rescans; %d processes tracked", st.Execs, st.Lost, st.Rescans, ts.Live+ts.Exited)
	return degraded, detail
}
