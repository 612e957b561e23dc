package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Connector protocol constants (linux/connector.h, linux/cn_proc.h); not all
// of them are in x/sys/unix.
const (
	cnIdxProc          = 0x1
	cnValProc          = 0x1
	procCnMcastListen  = 1
	procCnMcastIgnore  = 2
	nlmsgHdrLen        = 16
	cnMsgLen           = 20 // cb_id{idx,val} seq ack len flags
	procEventHdrLen    = 16 // what cpu timestamp_ns
	subscribeTimeout   = time.Second
	recvTimeout        = 200 * time.Millisecond
	defaultRcvBuf      = 16 << 20
	connectorRecvBytes = 64 << 10
)

// What values of proc_event.
const (
	WhatNone = 0x00000000 // acknowledgement
	WhatFork = 0x00000001
	WhatExec = 0x00000002
	WhatExit = 0x80000000
)

// ErrOverflow is returned by Connector.Recv when the kernel dropped events
// because the receive buffer was full (ENOBUFS): the caller must rescan.
var ErrOverflow = errors.New("proc connector: receive buffer overflow, events lost")

// KernelEvent is one proc_event as the kernel sent it. Timestamp is
// CLOCK_MONOTONIC nanoseconds at the event.
type KernelEvent struct {
	What      uint32
	CPU       uint32
	Seq       uint32
	Timestamp uint64
	// Fork: the parent; exec and exit: the process itself.
	PID, TGID int
	// Fork: the child. Exit: the parent (kernels ≥ 4.18, else 0).
	ChildPID, ChildTGID int
	ParentPID           int
	ExitCode            uint32
	ExitSignal          uint32
}

// Connector is a subscription to the netlink proc connector. It is used by
// one goroutine at a time.
type Connector struct {
	fd      int
	buf     []byte
	rcvBuf  int
	lastSeq map[uint32]uint32 // per CPU: the kernel numbers events per CPU
	lost    uint64
}

// OpenConnector subscribes to process events with a receive buffer of
// rcvBuf bytes (0: 16 MiB). It waits for the kernel's acknowledgement,
// because the kernel silently ignores subscriptions from outside the
// initial user and pid namespaces: without the ack, no events would ever
// come and the sensor would look healthy while blind.
func OpenConnector(rcvBuf int) (*Connector, error) {
	if rcvBuf <= 0 {
		rcvBuf = defaultRcvBuf
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector: socket: %w", err)
	}
	c := &Connector{fd: fd, buf: make([]byte, connectorRecvBytes), lastSeq: map[uint32]uint32{}}
	fail := func(what string, err error) (*Connector, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: %s: %w", what, err)
	}
	// SO_RCVBUFFORCE ignores net.core.rmem_max (needs CAP_NET_ADMIN, which
	// the connector needs anyway on older kernels); SO_RCVBUF is capped by it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf); err != nil {
			return fail("SO_RCVBUF", err)
		}
	}
	c.rcvBuf, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	// A receive timeout lets the owner notice cancellation and run pending
	// rescans; closing a netlink fd does not wake a blocked recvfrom.
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("SO_RCVTIMEO", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fail("bind CN_IDX_PROC", err)
	}
	nonce := rand.Uint32() >> 1
	if err := c.send(procCnMcastListen, nonce); err != nil {
		return fail("subscribe", err)
	}
	if err := c.waitAck(nonce); err != nil {
		return fail("subscribe", err)
	}
	return c, nil
}

// RcvBuf is the receive buffer size the kernel granted (it doubles the
// requested value for bookkeeping).
func (c *Connector) RcvBuf() int { return c.rcvBuf }

// SetRcvBuf changes the receive buffer (tests shrink it to force overflow).
func (c *Connector) SetRcvBuf(n int) error {
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err != nil {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n); err != nil {
			return err
		}
	}
	c.rcvBuf, _ = unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return nil
}

func (c *Connector) send(op uint32, ack uint32) error {
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(os.Getpid()))
	cn := msg[nlmsgHdrLen:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], ack) // seq
	ne.PutUint32(cn[12:], ack)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], op)
	return unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// waitAck reads until the acknowledgement of our subscription arrives.
// Events received meanwhile are dropped: the caller's initial /proc scan,
// which follows, covers every process they could be about.
func (c *Connector) waitAck(nonce uint32) error {
	deadline := time.Now().Add(subscribeTimeout)
	for time.Now().Before(deadline) {
		got, ackErr := false, uint32(0)
		err := c.recvOnce(func(ev KernelEvent, cnAck uint32) {
			if ev.What == WhatNone && cnAck == nonce+1 {
				got, ackErr = true, uint32(ev.PID)
			}
		})
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, ErrOverflow) {
			return err
		}
		if got {
			if ackErr != 0 {
				return fmt.Errorf("kernel refused: %w", unix.Errno(ackErr))
			}
			return nil
		}
	}
	return errors.New("no acknowledgement from the kernel within 1s (not in the initial user/pid namespace, no CAP_NET_ADMIN, or CONFIG_PROC_EVENTS off)")
}

// Recv waits up to the receive timeout for one datagram and calls fn for
// each process event in it. It returns nil on timeout, ErrOverflow when the
// kernel dropped events, and other errors only for a broken socket.
func (c *Connector) Recv(fn func(KernelEvent)) error {
	err := c.recvOnce(func(ev KernelEvent, _ uint32) {
		if ev.What != WhatNone {
			fn(ev)
		}
	})
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return nil
	}
	return err
}

// Lost returns the number of events known lost from gaps in the kernel's
// per-CPU sequence numbers. It is exact where ENOBUFS only says "some".
func (c *Connector) Lost() uint64 { return c.lost }

func (c *Connector) recvOnce(fn func(KernelEvent, uint32)) error {
	n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			return ErrOverflow
		}
		return err
	}
	b := c.buf[:n]
	for len(b) >= nlmsgHdrLen {
		ne := binary.NativeEndian
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < nlmsgHdrLen || l > len(b) {
			break
		}
		if typ != unix.NLMSG_ERROR && typ != unix.NLMSG_NOOP && typ != unix.NLMSG_OVERRUN {
			if ev, ack, ok := parseCnMsg(b[nlmsgHdrLen:l]); ok {
				c.track(ev)
				fn(ev, ack)
			}
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return nil
}

// track counts sequence gaps per CPU. The kernel numbers every event it
// generates per CPU (acknowledgements included, on current kernels), so
// with no filter a gap is exactly the events lost. Older kernels send acks
// with CPU -1 and the requester's sequence number: those are skipped.
func (c *Connector) track(ev KernelEvent) {
	if ev.CPU == ^uint32(0) {
		return
	}
	if last, ok := c.lastSeq[ev.CPU]; ok {
		if gap := ev.Seq - last - 1; gap > 0 && gap < 1<<31 {
			c.lost += uint64(gap)
		}
	}
	c.lastSeq[ev.CPU] = ev.Seq
}

// parseCnMsg decodes a cn_msg carrying a proc_event. The payload is packed
// after the 20-byte cn_msg, so fields are read bytewise, not by casting.
func parseCnMsg(b []byte) (KernelEvent, uint32, bool) {
	var ev KernelEvent
	if len(b) < cnMsgLen+procEventHdrLen {
		return ev, 0, false
	}
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != cnIdxProc || ne.Uint32(b[4:]) != cnValProc {
		return ev, 0, false
	}
	ev.Seq = ne.Uint32(b[8:])
	ack := ne.Uint32(b[12:])
	dl := int(ne.Uint16(b[16:]))
	d := b[cnMsgLen:]
	if dl < len(d) {
		d = d[:dl]
	}
	if len(d) < procEventHdrLen {
		return ev, 0, false
	}
	ev.What = ne.Uint32(d[0:])
	ev.CPU = ne.Uint32(d[4:])
	ev.Timestamp = ne.Uint64(d[8:])
	u := d[procEventHdrLen:]
	i32 := func(off int) int {
		if off+4 > len(u) {
			return 0
		}
		return int(int32(ne.Uint32(u[off:])))
	}
	switch ev.What {
	case WhatNone:
		ev.PID = i32(0) // ack.err
	case WhatFork:
		ev.PID, ev.TGID, ev.ChildPID, ev.ChildTGID = i32(0), i32(4), i32(8), i32(12)
	case WhatExec:
		ev.PID, ev.TGID = i32(0), i32(4)
	case WhatExit:
		ev.PID, ev.TGID = i32(0), i32(4)
		ev.ExitCode, ev.ExitSignal = uint32(i32(8)), uint32(i32(12))
		ev.ParentPID = i32(20) // parent_tgid
	default:
		// uid, gid, sid, ptrace, comm, coredump: decoded only as far
		// as pid/tgid; the sensor ignores them but counts their seq.
		ev.PID, ev.TGID = i32(0), i32(4)
	}
	return ev, ack, true
}

// Close unsubscribes and closes the socket.
func (c *Connector) Close() error {
	_ = c.send(procCnMcastIgnore, 0)
	return unix.Close(c.fd)
}
