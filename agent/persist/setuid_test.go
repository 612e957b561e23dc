package persist

import (
	"io/fs"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/picket-agent/picket/internal/integration"
)

// TestSensorSetuidAndCapabilities covers the periodic scan: a setuid copy
// of a shell and a capability given to an interpreter, as an attacker
// would leave them, found without any notification.
func TestSensorSetuidAndCapabilities(t *testing.T) {
	fr := newFakeRoot(t)
	s := testSensor(fr.root)
	s.Options.Interval = 50 * time.Millisecond
	s.Options.SetuidInterval = 50 * time.Millisecond
	s.noNotify = true
	r := startSensor(t, s)
	r.quiet(200 * time.Millisecond)
	if degraded, detail := s.Live(); !degraded {
		t.Errorf("polling only should be degraded: %s", detail)
	}

	fr.write("/usr/local/bin/.rootsh", "ELF")
	if err := os.Chmod(fr.path("/usr/local/bin/.rootsh"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	r.expect("setuid_file | added | /usr/local/bin/.rootsh | name= | user= | before= | after=mode 4755 owner root:root | {}")
	// chmod g+s on an existing binary is a change of the same entry.
	if err := os.Chmod(fr.path("/usr/bin/passwd"), 0o755|fs.ModeSetuid|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	r.expect("setuid_file | modified | /usr/bin/passwd | name= | user= | before=mode 4755 owner root:root | after=mode 6755 owner root:root | {}")
	// Routine: a new plain binary, a rewrite of a setuid one keeping its mode.
	fr.write("/usr/bin/newtool", "ELF")
	fr.write("/usr/bin/passwd", "ELF2")
	r.quiet(300 * time.Millisecond)

	if os.Geteuid() != 0 {
		integration.Skip(t, "setting security.capability needs CAP_SETFCAP")
	}
	// setcap cap_setuid+ep /usr/bin/python3
	fr.write("/usr/bin/python3", "ELF")
	r.quiet(150 * time.Millisecond)
	if err := unix.Setxattr(fr.path("/usr/bin/python3"), XattrCapability, capXattr(0x02000000, true, 1<<7, 0, 0), 0); err != nil {
		integration.Skip(t, "this filesystem does not take security.capability: "+err.Error())
	}
	r.expect("file_capability | added | /usr/bin/python3 | name= | user= | before= | after=cap_setuid=ep | {}")
}
