package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
)

func TestClassify(t *testing.T) {
	local := NewAddrs([]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("::ffff:10.0.0.5"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("198.18.0.1")})
	if len(local) != 4 {
		t.Fatalf("addrs not deduplicated: %v", local)
	}
	for _, c := range []struct {
		src, dst string
		want     Direction
	}{
		{"198.18.0.1", "203.0.113.9", Outbound},
		{"10.0.0.5", "203.0.113.9", Outbound},
		{"::ffff:10.0.0.5", "203.0.113.9", Outbound},
		{"2001:db8::1", "2001:db8::2", Outbound},
		{"fe80::1", "fe80::2", Outbound},
		{"203.0.113.9", "198.18.0.1", Inbound},
		{"172.17.0.2", "203.0.113.9", Forwarded},
		{"127.0.0.1", "127.0.0.1", Loopback},
		{"198.18.0.1", "127.0.0.53", Loopback},
		{"::1", "::1", Loopback},
		{"198.18.0.1", "198.18.0.1", Outbound}, // to its own address: a local process opened it
	} {
		if got := Classify(netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst), local); got != c.want {
			t.Errorf("%s → %s: %s, want %s", c.src, c.dst, got, c.want)
		}
	}
	if (Addrs{}).Contains(netip.MustParseAddr("198.18.0.1")) {
		t.Fatal("empty set contains an address")
	}
}

func TestProtoName(t *testing.T) {
	for p, want := range map[uint8]string{6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 250: "proto-250"} {
		if got := ProtoName(p); got != want {
			t.Errorf("ProtoName(%d) = %s", p, got)
		}
	}
}

// addrMsg builds an RTM_NEWADDR message.
func addrMsg(family byte, attrs map[uint16][]byte) netlink.Message {
	ae := netlink.NewAttributeEncoder()
	for _, typ := range []uint16{ifaAddress, ifaLocal, 3} {
		if b, ok := attrs[typ]; ok {
			ae.Bytes(typ, b)
		}
	}
	b, _ := ae.Encode()
	hdr := make([]byte, ifaddrmsgLen)
	hdr[0] = family
	binary.NativeEndian.PutUint32(hdr[4:], 2)
	return netlink.Message{Header: netlink.Header{Type: rtmNewAddr}, Data: append(hdr, b...)}
}

func TestParseAddrMessages(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.1").As4()
	peer := netip.MustParseAddr("198.18.0.2").As4()
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	msgs := []netlink.Message{
		addrMsg(afInet, map[uint16][]byte{ifaAddress: v4[:], ifaLocal: v4[:], 3: []byte("eth0\x00")}),
		addrMsg(afInet, map[uint16][]byte{ifaAddress: peer[:], ifaLocal: v4[:]}), // point-to-point: local wins
		addrMsg(afInet6, map[uint16][]byte{ifaAddress: v6[:]}),
		addrMsg(afInet, map[uint16][]byte{ifaAddress: v6[:]}), // length does not fit the family
		{Header: netlink.Header{Type: rtmNewAddr}, Data: []byte{2, 24}},
		{Header: netlink.Header{Type: 3 /* NLMSG_DONE */}},
	}
	got, bad := ParseAddrMessages(msgs)
	want := []string{"198.18.0.1", "198.18.0.1", "2001:db8::1"}
	if bad != 2 || len(got) != len(want) {
		t.Fatalf("got %v bad %d", got, bad)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v", got)
		}
	}
}

// FuzzParseAddrMessages: the attributes are walked by hand; no input may
// panic, and every address returned is valid and of a known family.
func FuzzParseAddrMessages(f *testing.F) {
	v4 := netip.MustParseAddr("198.18.0.1").As4()
	f.Add(addrMsg(afInet, map[uint16][]byte{ifaLocal: v4[:]}).Data)
	f.Add([]byte{10, 64, 0, 0, 1, 0, 0, 0, 20, 0, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, bad := ParseAddrMessages([]netlink.Message{{Header: netlink.Header{Type: rtmNewAddr}, Data: b}})
		if len(got)+bad != 1 {
			t.Fatalf("%d addresses, %d bad for one message", len(got), bad)
		}
		for _, a := range got {
			if !a.IsValid() || (len(b) > 0 && b[0] != afInet && b[0] != afInet6) {
				t.Fatalf("address %v from family %v", a, b[:1])
			}
		}
	})
}
