package sshd

import (
	"net/netip"
	"testing"

	"github.com/picket-agent/picket/internal/sshdtest"
)

// TestFindsRealSSHD starts a real sshd and finds its listener among the
// machine's processes.
func TestFindsRealSSHD(t *testing.T) {
	s := sshdtest.Start(t, "127.0.0.1")
	ls, err := Listeners("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := Listener{PID: s.Cmd.Process.Pid, Addr: netip.MustParseAddrPort(s.Addr)}
	found := false
	for _, l := range ls {
		found = found || l == want
	}
	if !found {
		t.Fatalf("listeners %v lack %v", ls, want)
	}
	ports := Ports(ls)
	has := false
	for _, p := range ports {
		has = has || p == uint16(s.Port)
	}
	if !has {
		t.Fatalf("ports %v lack %d", ports, s.Port)
	}
}

func TestNoProc(t *testing.T) {
	if _, err := Listeners(t.TempDir() + "/missing"); err == nil {
		t.Fatal("no error for a missing proc")
	}
	ls, err := Listeners(t.TempDir())
	if err != nil || len(ls) != 0 {
		t.Fatalf("empty proc: %v %v", ls, err)
	}
}
