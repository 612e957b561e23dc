package proc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-agent/picket/agent/event"
)

// Run senses processes until ctx ends, calling emit from one goroutine in
// the order the kernel reported them. emit must be quick: while it blocks
// the kernel queues events in the socket buffer, and past its size they are
// lost (counted, then a rescan).
func (s *Source) Run(ctx context.Context, emit func(event.Event)) error {
	log := s.logger()
	r := s.newReader()
	em := &emitter{s: s, emit: emit}
	mode := s.Mode
	if mode == "" {
		mode = ModeAuto
	}
	switch mode {
	case ModeScan:
		log.Info("process sensor: /proc scan", "interval", s.ScanInterval)
		return s.runScan(ctx, r, em)
	case ModeConnector, ModeAuto:
		c, err := OpenConnector(s.RcvBuf)
		if err != nil {
			if mode == ModeConnector {
				return err
			}
			log.Warn("process sensor: proc connector unavailable, falling back to periodic /proc scan (short-lived processes will be missed)",
				"reason", err.Error())
			return s.runScan(ctx, r, em)
		}
		defer c.Close()
		log.Info("process sensor: netlink proc connector", "rcvbuf", c.RcvBuf())
		// The receive loop gets its own OS thread at a raised priority: a
		// sub-millisecond process is only readable if this thread runs
		// within that millisecond, on a host whose CPUs may all be busy.
		// The goroutine exits with the thread still locked, so the
		// reprioritised thread dies with it instead of returning to the
		// runtime's pool.
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), receiveNice); err != nil {
				log.Debug("process sensor: could not raise receive thread priority", "err", err.Error())
			}
			done <- s.runConnector(ctx, c, r, em)
		}()
		return <-done
	default:
		return fmt.Errorf("proc: unknown mode %q (auto, connector, scan)", s.Mode)
	}
}

// receiveNice is the receive thread's nice value: above ordinary work,
// well short of real-time scheduling, which a flood of execs could turn
// into a starved host.
const receiveNice = -15

func (s *Source) runConnector(ctx context.Context, c *Connector, r *Reader, em *emitter) error {
	log := s.logger()
	s.active.Store(ModeConnector)
	// The scanner's map doubles as the connector's set of live processes,
	// so a rescan can report the exits that lost events hid.
	sc := newScanner(r, sourceConnector)
	// Subscribed first, scanned second: a process started in between is
	// both scanned and reported, never neither.
	if err := sc.scan(DetailInitial, true, em.send); err != nil {
		return fmt.Errorf("proc: initial scan: %w", err)
	}
	h := &handler{s: s, sc: sc, r: r, em: em, statBuf: make([]byte, 1024)}
	var lastRescan time.Time
	pending := false
	lostSeen := c.Lost()
	for ctx.Err() == nil {
		err := c.Recv(h.handle)
		switch {
		case errors.Is(err, ErrOverflow):
			if s.stats.overflows.Add(1) == 1 {
				log.Warn("process sensor: events lost (receive buffer overflow); rescanning /proc", "rcvbuf", c.RcvBuf())
			}
			pending = true
		case err != nil:
			return fmt.Errorf("proc connector: receive: %w", err)
		}
		if l := c.Lost(); l != lostSeen {
			s.stats.lost.Add(l - lostSeen)
			lostSeen, pending = l, true
		}
		if pending && time.Since(lastRescan) >= minRescanGap {
			pending, lastRescan = false, time.Now()
			s.stats.rescans.Add(1)
			if err := sc.scan(DetailRescan, true, em.send); err != nil {
				return fmt.Errorf("proc: rescan: %w", err)
			}
		}
	}
	return nil
}

// handler turns kernel events into sensor events on the receive goroutine:
// reading /proc right there is what gives short-lived processes a chance,
// and one goroutine keeps the kernel's order for every pid.
type handler struct {
	s       *Source
	sc      *scanner
	r       *Reader
	em      *emitter
	statBuf []byte
}

// kernelTime converts the event's CLOCK_MONOTONIC stamp to wall time, so
// Event.Time is when it happened, not when it was read.
func kernelTime(ts uint64) time.Time {
	var mono unix.Timespec
	now := time.Now()
	if ts == 0 || unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil {
		return now.Round(0)
	}
	return now.Add(-time.Duration(uint64(mono.Nano()) - ts)).Round(0)
}

func (h *handler) handle(ke KernelEvent) {
	switch ke.What {
	case WhatExec:
		// After exec the thread that called it is the leader (de_thread),
		// so pid == tgid; anything else is not a new program image.
		if ke.PID != ke.TGID {
			return
		}
		p, _ := h.r.Read(ke.PID) // a parse error still leaves the pid
		if prev, ok := h.sc.known[ke.PID]; ok {
			// Fill from the fork what a vanished process could not give.
			if p.PPID == 0 {
				p.PPID = prev.ppid
			}
			if p.StartTime == 0 {
				p.StartTime = prev.start
			}
		}
		h.sc.known[ke.PID] = live{start: p.StartTime, ppid: p.PPID, comm: p.Comm}
		h.em.send(execEvent(kernelTime(ke.Timestamp), sourceConnector, "", &p))
	case WhatFork:
		// A new thread shares its process's tgid: only new processes count.
		if ke.ChildPID != ke.ChildTGID {
			return
		}
		p := &event.Process{PID: ke.ChildTGID, PPID: ke.TGID}
		// The start time identifies the child across pid reuse; one stat
		// read. Comm is not taken: the child may already have exec'd.
		if n, err := readFile(h.r.procRoot+"/"+strconv.Itoa(p.PID)+"/stat", h.statBuf); err == nil {
			if st, err := parseStat(h.statBuf[:n]); err == nil {
				p.StartTime = st.start
			}
		}
		h.sc.known[p.PID] = live{start: p.StartTime, ppid: p.PPID}
		h.em.send(event.Event{Time: kernelTime(ke.Timestamp), Kind: event.ProcFork, Source: sourceConnector,
			PID: p.PID, Proc: p})
	case WhatExit:
		// Threads exit one by one; the process is gone with its leader.
		if ke.PID != ke.TGID {
			return
		}
		l, ok := h.sc.known[ke.PID]
		if ok {
			delete(h.sc.known, ke.PID)
		} else {
			l.ppid = ke.ParentPID
		}
		ev := exitEvent(kernelTime(ke.Timestamp), sourceConnector, "", ke.PID, l)
		ev.Outcome = exitOutcome(ke.ExitCode)
		h.em.send(ev)
	}
}

// exitOutcome reads the kernel's wait-status style exit code: low 7 bits
// the killing signal, else the status in the next byte.
func exitOutcome(code uint32) string {
	if code&0x7f == 0 && code>>8 == 0 {
		return "success"
	}
	return "failure"
}
