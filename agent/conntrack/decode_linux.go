//go:build linux

package conntrack

import (
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
)

// DecodeEvent turns one netlink message of the NEW group into a Flow
// (Time, NetNS and Dir left to the caller). ok is false for a message that
// is not a NEW flow event (an update, an expectation).
func DecodeEvent(m netlink.Message) (f Flow, ok bool, err error) {
	var ev ct.Event
	if err := ev.Unmarshal(m); err != nil {
		return f, false, fmt.Errorf("conntrack: decode event: %w", err)
	}
	if ev.Type != ct.EventNew || ev.Flow == nil {
		return f, false, nil
	}
	t := ev.Flow.TupleOrig
	if !t.IP.SourceAddress.IsValid() || !t.IP.DestinationAddress.IsValid() {
		return f, false, nil
	}
	src, dst := t.IP.SourceAddress.Unmap(), t.IP.DestinationAddress.Unmap()
	f = Flow{Proto: ProtoName(t.Proto.Protocol), Zone: ev.Flow.Zone, Mark: ev.Flow.Mark}
	if f.Zone == 0 {
		f.Zone = t.Zone
	}
	f.Src = netip.AddrPortFrom(src, t.Proto.SourcePort)
	f.Dst = netip.AddrPortFrom(dst, t.Proto.DestinationPort)
	return f, true, nil
}
