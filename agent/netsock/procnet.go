package netsock

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/picket-agent/picket/agent/event"
)

// State is a socket state as /proc/net/{tcp,udp} prints it (the kernel's
// TCP_* numbering, which UDP reuses).
type State uint8

// The states the sensor acts on.
const (
	StateEstablished State = 0x01 // TCP established; UDP connected
	StateSynSent     State = 0x02 // TCP connect in progress
	StateClose       State = 0x07 // UDP bound but not connected
	StateListen      State = 0x0A // TCP listen
)

// Protocols, as Socket.Proto names them and as the /proc/net files are named.
const (
	TCP  = "tcp"
	TCP6 = "tcp6"
	UDP  = "udp"
	UDP6 = "udp6"
)

// protos lists the tables the sensor reads, in reading order (a function,
// not a package variable: no package-level mutable state).
func protos() [4]string { return [4]string{TCP, TCP6, UDP, UDP6} }

// Entry is one line of a /proc/net table: the socket with its state and
// owner uid (the uid that created the socket, which survives the process).
type Entry struct {
	event.Socket
	State State
	UID   int
}

// IsUDP reports whether the entry comes from a udp table.
func (e *Entry) IsUDP() bool { return e.Proto == UDP || e.Proto == UDP6 }

// Listening reports whether the socket accepts traffic from anyone: a TCP
// listener, or a UDP socket bound to a port and not connected to a peer
// (UDP has no listen state; an unconnected bound socket is its server).
func (e *Entry) Listening() bool {
	if e.IsUDP() {
		return e.State == StateClose && e.LPort != 0 && e.RPort == 0
	}
	return e.State == StateListen
}

// Outgoing reports whether the socket is connected (or connecting, for
// TCP) to a peer; whether it is outbound depends on the listeners.
func (e *Entry) Outgoing() bool {
	if e.RPort == 0 || !e.Remote.IsValid() || e.Remote.IsUnspecified() {
		return false
	}
	if e.IsUDP() {
		return e.State == StateEstablished
	}
	return e.State == StateEstablished || e.State == StateSynSent
}

// ParseProcNet parses the text of /proc/net/<proto> (or /proc/<pid>/net/
// <proto>). Lines it cannot parse are skipped and counted in bad: the
// format is the kernel's, but a truncated read or a future column layout
// must not stop the sensor. IPv4-mapped IPv6 addresses are unmapped, so a
// dual-stack socket's IPv4 peer reads as the IPv4 address it is.
func ParseProcNet(proto string, data []byte) (entries []Entry, bad int) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		f := fields(line)
		if len(f) == 0 {
			continue
		}
		if string(f[0]) == "sl" { // header
			continue
		}
		e, ok := parseLine(proto, f)
		if !ok {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	return entries, bad
}

// fields splits on spaces without allocating the strings.
func fields(line []byte) [][]byte {
	var f [][]byte
	for {
		line = bytes.TrimLeft(line, " \t\r")
		if len(line) == 0 {
			return f
		}
		i := bytes.IndexAny(line, " \t\r")
		if i < 0 {
			return append(f, line)
		}
		f = append(f, line[:i])
		line = line[i:]
	}
}

// parseLine reads sl, local, remote, st, tx:rx, tr:tm, retrnsmt, uid,
// timeout, inode; the columns after inode differ between tcp and udp and
// are not used.
func parseLine(proto string, f [][]byte) (Entry, bool) {
	var e Entry
	if len(f) < 10 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return e, false
	}
	var ok bool
	e.Proto = proto
	if e.Local, e.LPort, ok = parseEndpoint(f[1]); !ok {
		return e, false
	}
	if e.Remote, e.RPort, ok = parseEndpoint(f[2]); !ok {
		return e, false
	}
	if len(f[3]) != 2 {
		return e, false
	}
	st, err := strconv.ParseUint(string(f[3]), 16, 8)
	if err != nil {
		return e, false
	}
	e.State = State(st)
	uid, err := strconv.ParseUint(string(f[7]), 10, 32)
	if err != nil {
		return e, false
	}
	e.UID = int(uid)
	if e.Inode, err = strconv.ParseUint(string(f[9]), 10, 64); err != nil {
		return e, false
	}
	return e, true
}

// parseEndpoint parses "0100007F:1F90": the address is the kernel's
// in-memory __be32 words printed as host-order integers, so each 32-bit
// word must be laid back out in the host's byte order to get network
// order; the port is already a plain number.
func parseEndpoint(b []byte) (netip.Addr, int, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 || len(b)-i-1 != 4 {
		return netip.Addr{}, 0, false
	}
	hexAddr, hexPort := b[:i], b[i+1:]
	port, err := strconv.ParseUint(string(hexPort), 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	switch len(hexAddr) {
	case 8:
		var a [4]byte
		if !putWord(a[:], hexAddr) {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom4(a), int(port), true
	case 32:
		var a [16]byte
		for w := 0; w < 4; w++ {
			if !putWord(a[4*w:], hexAddr[8*w:8*w+8]) {
				return netip.Addr{}, 0, false
			}
		}
		return netip.AddrFrom16(a).Unmap(), int(port), true
	}
	return netip.Addr{}, 0, false
}

func putWord(dst, hex []byte) bool {
	v, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil || hex[0] == '+' || hex[0] == '-' {
		return false
	}
	binary.NativeEndian.PutUint32(dst, uint32(v))
	return true
}
