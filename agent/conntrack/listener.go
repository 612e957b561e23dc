package conntrack

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Options.
const (
	// DefaultReadBuffer is the receive buffer asked for: 8 MiB holds about
	// 30,000 NEW events (~250 bytes each with the kernel's overhead), a few
	// seconds of a connect flood. As root it is forced past
	// net.core.rmem_max.
	DefaultReadBuffer = 8 << 20
	// DefaultRefresh is how often the namespace's addresses are re-read
	// (they are also re-read, at most once a second, when a flow has no
	// local end: an address added since).
	DefaultRefresh = 30 * time.Second
	// DefaultCheck is how often the listener asks the kernel how many
	// connections the namespace tracks, to tell "quiet" from "inactive".
	DefaultCheck = 30 * time.Second
	// Backoff bounds of the re-dial after an error.
	minBackoff = 500 * time.Millisecond
	maxBackoff = time.Minute
)

// Sentinel errors. Run returns them wrapped, with the reason.
var (
	// ErrUnavailable: conntrack events cannot be received here (no
	// permission, module absent, events disabled, not Linux).
	ErrUnavailable = errors.New("conntrack: unavailable")
	// ErrNamespaceGone: the namespace to watch cannot be opened any more.
	ErrNamespaceGone = errors.New("conntrack: network namespace gone")
)

// Options configures a Listener.
type Options struct {
	// NSPath opens the network namespace to watch (a /proc/<pid>/ns/net
	// link or an `ip netns` bind mount such as /run/netns/<name>); empty
	// watches the agent's own namespace.
	NSPath string
	// NetNS is copied into every Flow: the namespace's inode, as the
	// caller names it.
	NetNS uint64
	// ProcRoot is the proc mount ("/proc"), for the sysctls that say
	// whether conntrack is loaded and emits events.
	ProcRoot string
	// ReadBuffer is the netlink receive buffer (DefaultReadBuffer when 0).
	ReadBuffer int
	// AllDirections also sends inbound and forwarded flows; by default
	// only outbound flows are sent (loopback never).
	AllDirections bool
	// Refresh and Check: DefaultRefresh and DefaultCheck when 0.
	Refresh time.Duration
	Check   time.Duration
	Logger  *slog.Logger
}

// Stats are a listener's counters, for status.
type Stats struct {
	Running    bool   // subscribed and receiving
	Received   uint64 // NEW events decoded
	Sent       uint64 // flows handed to the channel
	Outbound   uint64 // by direction, of the events received
	Inbound    uint64
	Forwarded  uint64
	Loopback   uint64
	Dropped    uint64 // flows the consumer could not take (channel full)
	Overruns   uint64 // ENOBUFS: the kernel dropped events (how many is unknown)
	BadEvents  uint64 // messages that did not decode
	Errors     uint64 // socket errors that ended a session
	Dials      uint64 // sessions opened
	LastError  string
	ReadBuffer int // receive buffer the kernel granted (bytes)
	LocalAddrs int // the namespace's addresses, at the last refresh
	Tracked    int // connections the namespace tracked at the last check; -1 unknown
	// Unavailable says why no event can be received (empty while
	// running); Inactive why none will come although subscribed.
	Unavailable string
	Inactive    string
}

// Listener receives the NEW events of one network namespace. Run must be
// called once; Stats may be called from any goroutine.
type Listener struct {
	opts Options

	mu    sync.Mutex
	stats Stats
}

// New returns a Listener; zero options take their defaults.
func New(opts Options) *Listener {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = DefaultReadBuffer
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Check <= 0 {
		opts.Check = DefaultCheck
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{opts: opts, stats: Stats{Tracked: -1}}
}

// Stats returns a copy of the counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

func (l *Listener) update(f func(st *Stats)) {
	l.mu.Lock()
	f(&l.stats)
	l.mu.Unlock()
}

// Describe renders st for status: what runs, or why not.
func (st Stats) Describe() string {
	if st.Unavailable != "" {
		return "unavailable: " + st.Unavailable
	}
	if !st.Running && st.Dials == 0 {
		return "starting"
	}
	s := fmt.Sprintf("%d NEW events (%d outbound), %d kernel overruns, %d dropped", st.Received, st.Outbound, st.Overruns, st.Dropped)
	if st.Inactive != "" {
		s += "; " + st.Inactive
	}
	if st.Errors > 0 {
		s += fmt.Sprintf("; %d errors (last: %s)", st.Errors, st.LastError)
	}
	return s
}
