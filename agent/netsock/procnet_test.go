package netsock

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-agent/picket/agent/event"
)

// littleEndian: the testdata was written on (and for) little-endian hosts,
// where the kernel's host-order hex reverses each address word.
func littleEndian(t testing.TB) {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	if b[0] != 1 {
		t.Skip("testdata is little-endian /proc output")
	}
}

func sock(proto, local string, lport int, remote string, rport int, inode uint64) event.Socket {
	s := event.Socket{Proto: proto, Local: netip.MustParseAddr(local), LPort: lport, RPort: rport, Inode: inode}
	if remote != "" {
		s.Remote = netip.MustParseAddr(remote)
	}
	return s
}

func TestParseProcNetTestdata(t *testing.T) {
	littleEndian(t)
	cases := []struct {
		file   string
		bad    int
		want   []Entry
		listen []bool
	}{
		{file: "tcp", bad: 1, want: []Entry{
			{sock(TCP, "0.0.0.0", 22, "0.0.0.0", 0, 20431), StateListen, 0},
			{sock(TCP, "127.0.0.1", 631, "0.0.0.0", 0, 18842), StateListen, 0},
			{sock(TCP, "10.0.0.5", 51234, "93.184.216.34", 443, 995512), StateEstablished, 1000},
			{sock(TCP, "10.0.0.5", 22, "192.168.1.10", 54321, 991203), StateEstablished, 0},
			{sock(TCP, "10.0.0.5", 40960, "192.168.0.1", 3306, 996001), StateSynSent, 108},
			{sock(TCP, "10.0.0.5", 46017, "93.184.216.34", 80, 0), 0x06, 0},
		}, listen: []bool{true, true, false, false, false, false}},
		{file: "tcp6", want: []Entry{
			{sock(TCP6, "::", 80, "::", 0, 30112), StateListen, 33},
			{sock(TCP6, "::1", 9091, "::", 0, 30150), StateListen, 0},
			{sock(TCP6, "198.18.0.1", 9090, "198.18.0.2", 40000, 41002), StateEstablished, 0},
			{sock(TCP6, "2001:db8::2", 57585, "2001:db8::1", 443, 41017), StateEstablished, 1000},
		}, listen: []bool{true, true, false, false}},
		{file: "udp", want: []Entry{
			{sock(UDP, "127.0.0.53", 53, "0.0.0.0", 0, 15012), StateClose, 101},
			{sock(UDP, "0.0.0.0", 68, "0.0.0.0", 0, 16020), StateClose, 0},
			{sock(UDP, "10.0.0.5", 54706, "8.8.8.8", 53, 52001), StateEstablished, 112},
			{sock(UDP, "0.0.0.0", 0, "0.0.0.0", 0, 52002), StateClose, 0},
		}, listen: []bool{true, true, false, false}},
		{file: "udp6", want: []Entry{
			{sock(UDP6, "::", 514, "::", 0, 17001), StateClose, 0},
		}, listen: []bool{true}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, bad := ParseProcNet(c.file, data)
			if bad != c.bad {
				t.Errorf("bad = %d, want %d", bad, c.bad)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d entries, want %d: %+v", len(got), len(c.want), got)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], c.want[i])
				}
				if l := got[i].Listening(); l != c.listen[i] {
					t.Errorf("entry %d: Listening() = %v", i, l)
				}
			}
		})
	}
}

func TestOutgoing(t *testing.T) {
	for _, c := range []struct {
		e    Entry
		want bool
	}{
		{Entry{sock(TCP, "10.0.0.5", 40000, "1.2.3.4", 443, 1), StateEstablished, 0}, true},
		{Entry{sock(TCP, "10.0.0.5", 40000, "1.2.3.4", 443, 1), StateSynSent, 0}, true},
		{Entry{sock(TCP, "10.0.0.5", 40000, "1.2.3.4", 443, 1), 0x06, 0}, false}, // TIME_WAIT
		{Entry{sock(UDP, "10.0.0.5", 40000, "1.2.3.4", 53, 1), StateEstablished, 0}, true},
		{Entry{sock(UDP, "10.0.0.5", 40000, "0.0.0.0", 0, 1), StateClose, 0}, false},
		{Entry{sock(UDP, "10.0.0.5", 40000, "1.2.3.4", 53, 1), StateSynSent, 0}, false},
	} {
		if got := c.e.Outgoing(); got != c.want {
			t.Errorf("%+v: Outgoing() = %v", c.e, got)
		}
	}
}

// format writes an entry back as the kernel does, for the fuzz round trip.
func format(e Entry) string {
	hexAddr := func(a netip.Addr) string {
		var b strings.Builder
		if a.Is4() {
			v := a.As4()
			fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(v[:]))
			return b.String()
		}
		v := a.As16()
		for w := 0; w < 4; w++ {
			fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(v[4*w:]))
		}
		return b.String()
	}
	return fmt.Sprintf("%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000 %5d 0 %d 1 0000000000000000 100 0 0 10 0\n",
		0, hexAddr(e.Local), e.LPort, hexAddr(e.Remote), e.RPort, uint8(e.State), e.UID, e.Inode)
}

func TestParseProcNetLive(t *testing.T) {
	for _, p := range protos() {
		data, err := os.ReadFile("/proc/self/net/" + p)
		if err != nil {
			continue
		}
		got, bad := ParseProcNet(p, data)
		if bad != 0 {
			t.Errorf("%s: %d unparseable lines in the live table:\n%s", p, bad, data)
		}
		if n := strings.Count(string(data), "\n") - 1; len(got) != n {
			t.Errorf("%s: %d entries from %d lines", p, len(got), n)
		}
	}
}
