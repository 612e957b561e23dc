package netsock

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseProcNet: the tables are the kernel's, but a parser that panics
// on a truncated read or a new column layout would stop the sensor. Every
// accepted entry must be well-formed and survive a format/parse round trip.
func FuzzParseProcNet(f *testing.F) {
	for _, p := range protos() {
		if b, err := os.ReadFile(filepath.Join("testdata", p)); err == nil {
			f.Add(p, b)
		}
		if b, err := os.ReadFile("/proc/self/net/" + p); err == nil {
			f.Add(p, b)
		}
	}
	f.Add(TCP, []byte("0: 0:0 0:0 0A 0 0 0 0 0 1"))
	f.Add(TCP6, []byte(" 1: 00000000000000000000000000000000:FFFF 00000000000000000000000000000000:0000 0A x y z 4294967295 0 18446744073709551615"))
	f.Fuzz(func(t *testing.T, proto string, b []byte) {
		got, bad := ParseProcNet(proto, b)
		if bad < 0 {
			t.Fatal("negative bad count")
		}
		for _, e := range got {
			if e.Proto != proto || !e.Local.IsValid() || !e.Remote.IsValid() || e.LPort < 0 || e.LPort > 65535 || e.RPort < 0 || e.RPort > 65535 || e.UID < 0 {
				t.Fatalf("malformed entry %+v", e)
			}
			again, bad := ParseProcNet(proto, []byte(format(e)))
			if bad != 0 || len(again) != 1 || again[0] != e {
				t.Fatalf("round trip of %+v: %+v (bad %d)", e, again, bad)
			}
		}
	})
}
