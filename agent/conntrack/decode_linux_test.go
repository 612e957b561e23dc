//go:build linux

package conntrack

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
)

// newEventMessage builds the netlink message the kernel multicasts for a
// NEW flow (the same encoding the conntrack library uses to create one).
func newEventMessage(t testing.TB, f ct.Flow) netlink.Message {
	t.Helper()
	var nfa []netfilter.Attribute
	tupleAttr := func(typ uint16, tp ct.Tuple) netfilter.Attribute {
		ip := []netfilter.Attribute{{Type: 1, Data: tp.IP.SourceAddress.AsSlice()}, {Type: 2, Data: tp.IP.DestinationAddress.AsSlice()}}
		if tp.IP.SourceAddress.Is6() {
			ip[0].Type, ip[1].Type = 3, 4
		}
		proto := []netfilter.Attribute{{Type: 1, Data: []byte{tp.Proto.Protocol}},
			{Type: 2, Data: be16(tp.Proto.SourcePort)}, {Type: 3, Data: be16(tp.Proto.DestinationPort)}}
		return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
			{Type: 1, Nested: true, Children: ip}, {Type: 2, Nested: true, Children: proto}}}
	}
	nfa = append(nfa, tupleAttr(1, f.TupleOrig), tupleAttr(2, f.TupleReply),
		netfilter.Attribute{Type: 8, Data: be32(f.Mark)}) // CTA_MARK
	m, err := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: netfilter.NFSubsysCTNetlink, MessageType: 0,
		Family: netfilter.ProtoIPv4, Flags: netlink.Create | netlink.Excl}, nfa)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func TestDecodeEvent(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("203.0.113.9")
	m := newEventMessage(t, ct.NewFlow(6, 0, src, dst, 40000, 443, 120, 7))
	f, ok, err := DecodeEvent(m)
	if err != nil || !ok {
		t.Fatalf("DecodeEvent: %v %v", ok, err)
	}
	if f.Proto != "tcp" || f.Src != netip.AddrPortFrom(src, 40000) || f.Dst != netip.AddrPortFrom(dst, 443) || f.Mark != 7 {
		t.Fatalf("flow %+v", f)
	}
	// An update (no Create flag) is not a NEW flow.
	m.Header.Flags = 0
	if _, ok, err := DecodeEvent(m); ok || err != nil {
		t.Fatalf("update decoded as new: %v %v", ok, err)
	}
	if _, _, err := DecodeEvent(netlink.Message{Data: []byte{1}}); err == nil {
		t.Fatal("garbage decoded")
	}
}

// FuzzDecodeEvent: the kernel's messages are decoded by the library and
// converted here; no input may panic, and an accepted flow has both ends.
func FuzzDecodeEvent(f *testing.F) {
	m := newEventMessage(f, ct.NewFlow(17, 0, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 5353, 53, 30, 0))
	f.Add(uint16(m.Header.Flags), m.Data)
	m6 := newEventMessage(f, ct.NewFlow(6, 0, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 1, 2, 30, 0))
	f.Add(uint16(m6.Header.Flags), m6.Data)
	f.Fuzz(func(t *testing.T, flags uint16, data []byte) {
		msg := netlink.Message{Header: netlink.Header{Type: m.Header.Type, Flags: netlink.HeaderFlags(flags)}, Data: data}
		fl, ok, err := DecodeEvent(msg)
		if ok && (err != nil || !fl.Src.Addr().IsValid() || !fl.Dst.Addr().IsValid() || fl.Proto == "") {
			t.Fatalf("accepted %+v (err %v)", fl, err)
		}
	})
}
