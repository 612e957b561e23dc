package conntrack

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mdlayher/netlink"
)

// Direction says who opened a flow, seen from the listener's namespace.
type Direction uint8

// Directions of a flow.
const (
	// Outbound: the original source is one of the namespace's addresses, so
	// a process (or a raw socket) of the namespace opened it.
	Outbound Direction = iota + 1
	// Inbound: the original destination is one of the namespace's
	// addresses and the source is not.
	Inbound
	// Forwarded: neither end is local; the namespace routes the flow (the
	// host's namespace for a container's traffic through a bridge).
	Forwarded
	// Loopback: the destination is a loopback address; never reported.
	Loopback
)

func (d Direction) String() string {
	switch d {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	case Forwarded:
		return "forwarded"
	case Loopback:
		return "loopback"
	}
	return "unknown"
}

// Flow is one new connection as conntrack saw it: the original direction's
// tuple (before any NAT, so as the socket that opened it sees it).
type Flow struct {
	Time  time.Time // when the event was received (conntrack carries no time)
	Proto string    // "tcp", "udp", "icmp", "icmpv6", "sctp", "udplite", "dccp", "gre" or "proto-<n>"
	Src   netip.AddrPort
	Dst   netip.AddrPort
	// NetNS is the inode of the network namespace the listener watches
	// (Options.NetNS).
	NetNS uint64
	Zone  uint16
	Mark  uint32
	Dir   Direction
}

// ProtoName names an IP protocol number the way Flow.Proto does.
func ProtoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 33:
		return "dccp"
	case 47:
		return "gre"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// Addrs is a namespace's own addresses, sorted (few: a binary search is
// cheaper than a map and allocates nothing).
type Addrs []netip.Addr

// NewAddrs sorts and deduplicates as, unmapping IPv4-mapped IPv6.
func NewAddrs(as []netip.Addr) Addrs {
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return Addrs(slices.Compact(out))
}

// Contains reports whether a is one of the addresses.
func (as Addrs) Contains(a netip.Addr) bool {
	_, ok := slices.BinarySearchFunc(as, a.Unmap().WithZone(""), netip.Addr.Compare)
	return ok
}

// Classify gives the direction of a flow from src to dst in a namespace
// whose addresses are local. A flow from a local address to another local
// (non-loopback) address is outbound: a process of the namespace opened it.
func Classify(src, dst netip.Addr, local Addrs) Direction {
	switch {
	case dst.Unmap().IsLoopback():
		return Loopback
	case local.Contains(src):
		return Outbound
	case local.Contains(dst):
		return Inbound
	}
	return Forwarded
}

// rtnetlink constants (linux/if_addr.h), spelled out so that the parser
// builds, and is fuzzed, on every platform.
const (
	rtmNewAddr   = 20 // RTM_NEWADDR
	ifaAddress   = 1  // IFA_ADDRESS
	ifaLocal     = 2  // IFA_LOCAL
	ifaddrmsgLen = 8  // struct ifaddrmsg
	afInet       = 2
	afInet6      = 10
)

// ParseAddrMessages reads the addresses of an RTM_GETADDR dump. For each
// message it takes IFA_LOCAL when present (on a point-to-point link
// IFA_ADDRESS is the peer's) and IFA_ADDRESS otherwise. Messages it cannot
// read are skipped and counted in bad: the kernel's, but a parser that
// trusts lengths would panic on a short one.
func ParseAddrMessages(msgs []netlink.Message) (addrs []netip.Addr, bad int) {
	for _, m := range msgs {
		if m.Header.Type != rtmNewAddr {
			continue
		}
		a, ok := parseAddrMessage(m.Data)
		if !ok {
			bad++
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, bad
}

func parseAddrMessage(b []byte) (netip.Addr, bool) {
	if len(b) < ifaddrmsgLen {
		return netip.Addr{}, false
	}
	family := b[0]
	_ = binary.NativeEndian.Uint32(b[4:8]) // interface index: not needed
	ad, err := netlink.NewAttributeDecoder(b[ifaddrmsgLen:])
	if err != nil {
		return netip.Addr{}, false
	}
	var local, addr netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case ifaLocal:
			local = ipOf(family, ad.Bytes())
		case ifaAddress:
			addr = ipOf(family, ad.Bytes())
		}
	}
	if ad.Err() != nil {
		return netip.Addr{}, false
	}
	if local.IsValid() {
		return local, true
	}
	return addr, addr.IsValid()
}

func ipOf(family byte, b []byte) netip.Addr {
	switch {
	case family == afInet && len(b) == 4:
		return netip.AddrFrom4([4]byte(b))
	case family == afInet6 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b)).Unmap()
	}
	return netip.Addr{}
}
