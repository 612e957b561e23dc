package netsock

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

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

// The TCP established hash is one table for every namespace, so a dump
// of one namespace's connections still walks all of it. Listeners live in
// their own small table: they are dumped on every poll, and the walk for
// connections is made only when the namespace's sockstat counts more TCP
// sockets "in use" (listeners, connecting and connected sockets) than
// listeners. On an idle host that skips nearly every walk.

const tcpListen = 10 // TCP_LISTEN

// readDiag dumps the tcp, tcp6, udp and udp6 sockets of a network
// namespace: nsFD is an open /proc/<pid>/ns/net, or 0 for the agent's own;
// netDir is its /proc/<pid>/net/ (for sockstat).
func readDiag(nsFD int, netDir string) ([]Entry, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("netsock: sock_diag: %w", err)
	}
	defer c.Close()
	inuse := tcpInUse(netDir)
	var all []Entry
	dump := func(family, proto uint8, name string, states uint32) (int, error) {
		req := make([]byte, diagReqLen)
		req[0], req[1] = family, proto
		binary.NativeEndian.PutUint32(req[4:], states)
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
			Data:   req,
		})
		if err != nil {
			return 0, fmt.Errorf("netsock: sock_diag %s: %w", name, err)
		}
		n := 0
		for _, m := range msgs {
			if e, ok := parseDiag(name, m.Data); ok {
				all, n = append(all, e), n+1
			}
		}
		return n, nil
	}
	for _, q := range []struct {
		family uint8
		name   string
	}{{unix.AF_INET, TCP}, {unix.AF_INET6, TCP6}} {
		listeners, err := dump(q.family, unix.IPPROTO_TCP, q.name, 1<<tcpListen)
		if err != nil {
			return nil, err
		}
		if n, ok := inuse[q.name]; ok && n <= listeners {
			continue // nothing but listeners: no walk
		}
		if _, err := dump(q.family, unix.IPPROTO_TCP, q.name, ^uint32(1<<tcpListen)); err != nil {
			return nil, err
		}
	}
	for _, q := range []struct {
		family uint8
		name   string
	}{{unix.AF_INET, UDP}, {unix.AF_INET6, UDP6}} {
		if _, err := dump(q.family, unix.IPPROTO_UDP, q.name, ^uint32(0)); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// tcpInUse reads "TCP: inuse N" (sockstat) and "TCP6: inuse N"
// (sockstat6) of a namespace, by protocol name; a missing figure means
// "walk anyway".
func tcpInUse(netDir string) map[string]int {
	out := map[string]int{}
	for file, key := range map[string]string{"sockstat": TCP, "sockstat6": TCP6} {
		b, err := os.ReadFile(netDir + file)
		if err != nil {
			continue
		}
		prefix := "TCP: inuse "
		if key == TCP6 {
			prefix = "TCP6: inuse "
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				f, _, _ := strings.Cut(rest, " ")
				if n, err := strconv.Atoi(f); err == nil {
					out[key] = n
				}
			}
		}
	}
	return out
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
