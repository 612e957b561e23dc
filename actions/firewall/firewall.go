package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults and limits for Options and TTLs.
const (
	DefaultTable = "picket"
	// DefaultRatePerSecond is how many new connections per second a
	// rate-limited source (or any source during containment) may open.
	DefaultRatePerSecond = 10
	// DefaultChunk is how many prefixes go into one netlink batch.
	DefaultChunk = 500
	// MaxChunk keeps one element list under the 64 KiB a netlink attribute
	// can hold (an IPv6 prefix costs 76 bytes: start and end elements).
	MaxChunk = 800
	// MinTTL and MaxTTL bound every TTL: a TTL under a millisecond would be
	// sent as "no timeout", which is a permanent rule; a TTL of a year is a
	// bug in the caller.
	MinTTL = time.Second
	MaxTTL = 365 * 24 * time.Hour
	// allowGrace keeps containment's whitelist a little longer than the
	// containment itself, so the kernel never drops the whitelist first.
	allowGrace = time.Second
)

// Sentinel errors.
var (
	ErrUnsupported = errors.New("firewall: nftables needs Linux")
	ErrTTL         = errors.New("firewall: ttl out of range")
	ErrPrefix      = errors.New("firewall: invalid prefix")
	// ErrOverlap: the prefix overlaps a different element in force (a CIDR
	// containing it or contained in it); interval sets hold no overlaps.
	ErrOverlap = errors.New("firewall: prefix overlaps an element in force")
	// ErrNotPresent: the table is missing (never made, removed or flushed);
	// call Ensure.
	ErrNotPresent = errors.New("firewall: table not present")
)

// Options configure a Firewall. Zero values take the defaults.
type Options struct {
	Table  string // name of the inet table; tests use their own
	Logger *slog.Logger
	// RatePerSecond and RateBurst shape the per-source limit on new
	// connections (burst defaults to the rate).
	RatePerSecond uint32
	RateBurst     uint32
	Chunk         int // prefixes per batch in BlockMany and friends
	// NetNS is an open file descriptor of a network namespace to work in;
	// 0 means the caller's own.
	NetNS int
}

func (o Options) withDefaults() Options {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RatePerSecond == 0 {
		o.RatePerSecond = DefaultRatePerSecond
	}
	if o.RateBurst == 0 {
		o.RateBurst = o.RatePerSecond
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.Chunk > MaxChunk {
		o.Chunk = MaxChunk
	}
	return o
}

// Containment describes containment mode: outbound is dropped except to
// Allow (plus loopback, established flows, NDP and DHCP), new inbound
// connections are rate-limited per source, and new connections to SSHPorts
// are dropped except from the admin whitelist.
type Containment struct {
	Allow    []netip.Prefix
	SSHPorts []uint16
}

// Entry is an address element in force.
type Entry struct {
	Prefix  netip.Prefix
	Timeout time.Duration // the TTL it was given; 0 for entries without one
	Expires time.Time     // when the kernel drops it; zero without timeout
}

// PortEntry is a port element in force.
type PortEntry struct {
	Port    uint16
	Timeout time.Duration
	Expires time.Time
}

// ContainmentState is containment as the kernel has it.
type ContainmentState struct {
	Active   bool
	Until    time.Time // the latest expiry of contain_active
	Allow    []Entry
	SSHPorts []PortEntry
}

// State is everything in force, read from the kernel.
type State struct {
	Present     bool // the table exists (Firewall.Present also checks it is whole)
	Blocked     []Entry
	Outbound    []Entry
	RateLimited []Entry
	Admin       []netip.Prefix
	SSHPaused   []PortEntry
	Containment ContainmentState
}

func checkTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("%w: %s (want %s to %s)", ErrTTL, ttl, MinTTL, MaxTTL)
	}
	return nil
}

// Direction names a family of prefix sets: inbound blocks, outbound
// blocks, per-source rate limits.
type Direction int

// Directions.
const (
	Inbound Direction = iota
	Outbound
	Limited
)
