//go:build linux

package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Run receives NEW events until ctx ends and sends the flows to out
// without ever blocking on it (a full channel drops the flow and counts
// it: the kernel's buffer must keep draining). Errors are counted and the
// socket re-dialled with backoff. Run returns ctx's error, or an error
// wrapping ErrUnavailable when it can never work here (no permission), or
// ErrNamespaceGone when the namespace cannot be opened.
func (l *Listener) Run(ctx context.Context, out chan<- Flow) error {
	backoff := minBackoff
	for {
		start := time.Now()
		err, retry := l.session(ctx, out)
		l.update(func(st *Stats) { st.Running = false })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("conntrack: session ended")
		}
		l.update(func(st *Stats) {
			st.LastError = err.Error()
			if errors.Is(err, ErrUnavailable) {
				st.Unavailable = strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
			} else {
				st.Errors++
			}
		})
		if !retry {
			return err
		}
		l.opts.Logger.Warn("conntrack listener failed; re-dialling", "ns", l.opts.NetNS, "err", err, "in", backoff)
		if errors.Is(err, ErrUnavailable) {
			backoff = maxBackoff // a module loaded later, a sysctl changed: rare
		} else if time.Since(start) > maxBackoff {
			backoff = minBackoff // it ran a good while: a fresh failure
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session is one subscription: open, check, receive until an error.
func (l *Listener) session(ctx context.Context, out chan<- Flow) (err error, retry bool) {
	nsFD := 0
	if l.opts.NSPath != "" {
		f, err := os.Open(l.opts.NSPath)
		if err != nil {
			return fmt.Errorf("%w: open %s: %v", ErrNamespaceGone, l.opts.NSPath, err), false
		}
		defer f.Close()
		nsFD = int(f.Fd())
	}
	l.update(func(st *Stats) { st.Dials++ })
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
	if err != nil {
		if isPerm(err) {
			return fmt.Errorf("%w: no permission to open a netfilter netlink socket in the namespace (needs CAP_NET_ADMIN and CAP_SYS_ADMIN): %v", ErrUnavailable, err), false
		}
		return fmt.Errorf("%w: netfilter netlink socket: %v", ErrUnavailable, err), true
	}
	defer c.Close()
	granted := setReadBuffer(c, l.opts.ReadBuffer)
	if err := c.JoinGroup(uint32(netfilter.GroupCTNew)); err != nil {
		if isPerm(err) {
			return fmt.Errorf("%w: no permission to subscribe to conntrack events (needs CAP_NET_ADMIN): %v", ErrUnavailable, err), false
		}
		return fmt.Errorf("%w: subscribe to conntrack NEW events: %v", ErrUnavailable, err), true
	}
	// Joining autoloads nf_conntrack_netlink (and so nf_conntrack) where
	// modules can be loaded; if the sysctls are still absent, conntrack is
	// not in this kernel.
	sys := l.opts.ProcRoot + "/sys/net/netfilter/"
	if _, err := os.Stat(sys + "nf_conntrack_count"); err != nil {
		return fmt.Errorf("%w: conntrack is not loaded (%s absent)", ErrUnavailable, sys+"nf_conntrack_count"), true
	}
	if nsFD == 0 { // /proc/sys/net shows the reader's namespace: only ours can be read
		if b, err := os.ReadFile(sys + "nf_conntrack_events"); err == nil && strings.TrimSpace(string(b)) == "0" {
			return fmt.Errorf("%w: conntrack events are disabled (net.netfilter.nf_conntrack_events = 0)", ErrUnavailable), true
		}
	}

	r := receiver{l: l, conn: c, nsFD: nsFD, out: out}
	if err := r.refresh(time.Now()); err != nil {
		l.opts.Logger.Warn("conntrack: cannot read the namespace's addresses", "ns", l.opts.NetNS, "err", err)
	}
	l.update(func(st *Stats) {
		st.Running, st.Unavailable, st.ReadBuffer = true, "", granted
	})

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.watchActive(sctx, nsFD)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Unblock the receive when ctx ends (a deadline in the past, set from
	// another goroutine, is what the runtime poller supports).
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	return r.loop(ctx), true
}

func isPerm(err error) bool { return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) }

// setReadBuffer asks for n bytes, forced past net.core.rmem_max when the
// agent may (CAP_NET_ADMIN), and returns what the kernel granted.
func setReadBuffer(c *netlink.Conn, n int) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return got
}

// receiver is one session's receive loop and its view of the namespace's
// addresses (owned by the loop's goroutine).
type receiver struct {
	l         *Listener
	conn      *netlink.Conn
	nsFD      int
	out       chan<- Flow
	local     Addrs
	refreshed time.Time
}

func (r *receiver) loop(ctx context.Context) error {
	for {
		msgs, err := r.conn.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				// The socket stays usable: the kernel dropped what did not
				// fit and says so once.
				r.l.update(func(st *Stats) { st.Overruns++ })
				continue
			}
			return fmt.Errorf("conntrack: receive: %w", err)
		}
		now := time.Now()
		for _, m := range msgs {
			r.handle(now, m)
		}
	}
}

func (r *receiver) handle(now time.Time, m netlink.Message) {
	f, ok, err := DecodeEvent(m)
	if err != nil {
		r.l.update(func(st *Stats) { st.BadEvents++ })
		return
	}
	if !ok {
		return
	}
	f.Time, f.NetNS = now, r.l.opts.NetNS
	if now.Sub(r.refreshed) > r.l.opts.Refresh {
		_ = r.refresh(now)
	}
	f.Dir = Classify(f.Src.Addr(), f.Dst.Addr(), r.local)
	if f.Dir == Forwarded && now.Sub(r.refreshed) > time.Second {
		// Perhaps an address added since the last read.
		if r.refresh(now) == nil {
			f.Dir = Classify(f.Src.Addr(), f.Dst.Addr(), r.local)
		}
	}
	send := f.Dir == Outbound || (r.l.opts.AllDirections && f.Dir != Loopback)
	sent := false
	if send {
		select {
		case r.out <- f:
			sent = true
		default:
		}
	}
	r.l.update(func(st *Stats) {
		st.Received++
		st.Inactive = ""
		switch f.Dir {
		case Outbound:
			st.Outbound++
		case Inbound:
			st.Inbound++
		case Forwarded:
			st.Forwarded++
		case Loopback:
			st.Loopback++
		}
		if sent {
			st.Sent++
		} else if send {
			st.Dropped++
		}
	})
}

// refresh re-reads the namespace's addresses (an RTM_GETADDR dump over a
// route netlink socket opened in the namespace).
func (r *receiver) refresh(now time.Time) error {
	r.refreshed = now
	addrs, err := namespaceAddrs(r.nsFD)
	if err != nil {
		return err
	}
	r.local = addrs
	r.l.update(func(st *Stats) { st.LocalAddrs = len(addrs) })
	return nil
}

func namespaceAddrs(nsFD int) (Addrs, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("conntrack: route netlink socket: %w", err)
	}
	defer c.Close()
	req := netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   make([]byte, ifaddrmsgLen), // ifaddrmsg, family AF_UNSPEC: both
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("conntrack: dump addresses: %w", err)
	}
	addrs, _ := ParseAddrMessages(msgs)
	return NewAddrs(addrs), nil
}

// watchActive asks the kernel, now and every Check, how many connections
// the namespace tracks. None tracked and no event received means nothing
// registered conntrack's hooks in the namespace: no event can come.
func (l *Listener) watchActive(ctx context.Context, nsFD int) {
	t := time.NewTicker(l.opts.Check)
	defer t.Stop()
	for {
		n := trackedCount(nsFD)
		l.update(func(st *Stats) {
			st.Tracked = n
			if n == 0 && st.Received == 0 {
				st.Inactive = "conntrack tracks no connection in this namespace and no NEW event came: nothing registered its hooks here " +
					"(no nftables/iptables rule using ct, no NAT, no container runtime), so no event is possible and connections shorter than the poll are missed"
			} else {
				st.Inactive = ""
			}
		})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// trackedCount is the namespace's conntrack entry count, -1 when it cannot
// be read.
func trackedCount(nsFD int) int {
	c, err := ct.Dial(&netlink.Config{NetNS: nsFD})
	if err != nil {
		return -1
	}
	defer c.Close()
	g, err := c.StatsGlobal()
	if err != nil {
		return -1
	}
	return int(g.Entries)
}
