//go:build !linux

package proc

import (
	"context"
	"errors"
	"fmt"

	"github.com/picket-agent/picket/agent/event"
)

// ErrUnsupported: the proc connector exists only on Linux.
var ErrUnsupported = errors.New("proc: the netlink proc connector is Linux-only")

// Run scans ProcRoot periodically; the connector is Linux-only, so mode
// connector fails and auto falls back to scanning (which fails cleanly when
// there is no procfs).
func (s *Source) Run(ctx context.Context, emit func(event.Event)) error {
	r := s.newReader()
	em := &emitter{s: s, emit: emit}
	switch s.Mode {
	case ModeConnector:
		return ErrUnsupported
	case ModeScan, ModeAuto, "":
		s.logger().Warn("process sensor: no proc connector on this OS, scanning /proc")
		return s.runScan(ctx, r, em)
	default:
		return fmt.Errorf("proc: unknown mode %q (auto, connector, scan)", s.Mode)
	}
}
