package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// watchRestart is the pause before a broken monitor is opened again.
const watchRestart = time.Second

// Watch calls onChange when someone else changes the table: deletes it
// (nft flush ruleset, firewalld, Debian's nftables.conf), deletes or edits a
// chain, rule or set of it. Changes made by this process are not reported,
// so Remove does not make the caller re-assert (the kernel names the sending
// thread by its id in the initial PID namespace: an agent in a PID namespace
// of its own sees its changes reported too, which costs one Ensure that
// finds the table whole). Element changes are not watched: the reconciler's
// periodic List covers them. When the monitor breaks
// (events lost) onChange is called too, as something may have been missed.
// onChange runs on Watch's goroutine and should be quick. Watch returns nil
// when ctx ends, or an error if the monitor cannot be opened at all.
func (f *Firewall) Watch(ctx context.Context, onChange func()) error {
	first := true
	for {
		err := f.watchOnce(ctx, onChange, first)
		if ctx.Err() != nil {
			return nil
		}
		if first && err != nil && errors.Is(err, errMonitorOpen) {
			return err
		}
		first = false
		f.log.Warn("firewall: nftables monitor ended; reopening", "err", err)
		onChange()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRestart):
		}
	}
}

var errMonitorOpen = errors.New("firewall: open nftables monitor")

func (f *Firewall) watchOnce(ctx context.Context, onChange func(), first bool) error {
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *netlink.Conn) error {
		// Our own batches (10,000 elements) are echoed to the monitor too.
		return c.SetReadBuffer(8 << 20)
	})}
	if f.opt.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(f.opt.NetNS))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", errMonitorOpen, err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return fmt.Errorf("%w: %w", errMonitorOpen, err)
	}
	defer func() {
		_ = mon.Close()
		go func() { // let the library's reader finish its last send
			for range events {
			}
		}()
	}()
	if !first {
		f.log.Info("firewall: nftables monitor reopened")
	}
	if f.watching != nil {
		f.watching()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case evs, ok := <-events:
			if !ok {
				return errors.New("firewall: nftables monitor closed")
			}
			if g := evs.GeneratedBy; g != nil {
				if g.Type == nftables.MonitorEventTypeOOB {
					return fmt.Errorf("firewall: nftables monitor: %w", g.Error)
				}
				if gen, ok := g.Data.(*nftables.GenMsg); ok && ourThread(gen.ProcPID) {
					continue
				}
			}
			if f.touches(evs.Changes) {
				onChange()
			}
		}
	}
}

// ourThread says whether the kernel's "process" of a batch is one of our
// threads: nftables records the sending thread's id, and Go sends from any
// thread. A thread gone since is taken as foreign (a harmless extra
// onChange).
func ourThread(tid uint32) bool {
	if int(tid) == os.Getpid() {
		return true
	}
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}

// touches says whether a batch of changes concerns our table. Set events
// carry no table name, so a set with one of our names counts.
func (f *Firewall) touches(changes []*nftables.MonitorEvent) bool {
	ours := func(t *nftables.Table) bool {
		return t != nil && t.Name == f.opt.Table && t.Family == nftables.TableFamilyINet
	}
	for _, e := range changes {
		switch d := e.Data.(type) {
		case *nftables.Table:
			if ours(d) {
				return true
			}
		case *nftables.Chain:
			if ours(d.Table) {
				return true
			}
		case *nftables.Rule:
			if ours(d.Table) {
				return true
			}
		case *nftables.Set:
			for _, s := range setSpecs() {
				if s.name == d.Name {
					return true
				}
			}
		}
	}
	return false
}
