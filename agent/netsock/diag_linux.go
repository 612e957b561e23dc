package netsock

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why sock_diag and not /proc/net/{tcp,tcp6}: reading those walks every
// bucket of the kernel's TCP established hash (262,144 on a 24 GiB host,
// sized from RAM, shared by all namespaces) with a cond_resched() per
// bucket, several times per file; that cost about 8 ms per table per
// namespace, every poll, with two sockets in the table, and was most of
// the agent's CPU on an idle host. inet_diag skips empty buckets with one
// load each, so the same dump costs a fraction of that. The /proc tables
// stay as the fallback (no netlink, a kernel without udp_diag, a fake
// proc tree in tests).

const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	diagReqLen       = 56 // struct inet_diag_req_v2
	diagMsgLen       = 72 // struct inet_diag_msg
)

// readDiag dumps the tcp, tcp6, udp and udp6 sockets of a network
// namespace: nsFD is an open /proc/<pid>/ns/net, or 0 for the agent's own.
func readDiag(nsFD int) ([]Entry, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("netsock: sock_diag: %w", err)
	}
	defer c.Close()
	var all []Entry
	for _, q := range []struct {
		family, proto uint8
		name          string
	}{
		{unix.AF_INET, unix.IPPROTO_TCP, TCP}, {unix.AF_INET6, unix.IPPROTO_TCP, TCP6},
		{unix.AF_INET, unix.IPPROTO_UDP, UDP}, {unix.AF_INET6, unix.IPPROTO_UDP, UDP6},
	} {
		req := make([]byte, diagReqLen)
		req[0], req[1] = q.family, q.proto
		binary.NativeEndian.PutUint32(req[4:], ^uint32(0)) // every state
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
			Data:   req,
		})
		if err != nil {
			return nil, fmt.Errorf("netsock: sock_diag %s: %w", q.name, err)
		}
		for _, m := range msgs {
			if e, ok := parseDiag(q.name, m.Data); ok {
				all = append(all, e)
			}
		}
	}
	return all, nil
}

// parseDiag decodes one struct inet_diag_msg: ports and addresses are in
// network order, the rest in the host's.
func parseDiag(proto string, b []byte) (Entry, bool) {
	var e Entry
	if len(b) < diagMsgLen {
		return e, false
	}
	e.Proto = proto
	e.State = State(b[1])
	e.LPort = int(binary.BigEndian.Uint16(b[4:6]))
	e.RPort = int(binary.BigEndian.Uint16(b[6:8]))
	switch b[0] {
	case unix.AF_INET:
		e.Local = netip.AddrFrom4([4]byte(b[8:12]))
		e.Remote = netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		e.Local = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		e.Remote = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	default:
		return e, false
	}
	e.UID = int(binary.NativeEndian.Uint32(b[64:68]))
	e.Inode = uint64(binary.NativeEndian.Uint32(b[68:72]))
	return e, true
}
