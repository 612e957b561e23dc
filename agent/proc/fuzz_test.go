package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addTestdata(f *testing.F, name string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "proc", "*", name))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("/proc/self/" + name); err == nil {
		f.Add(b)
	}
}

// FuzzParseStat: /proc/<pid>/stat carries a process-chosen comm (prctl,
// the binary's name), so the parser sees attacker-controlled bytes.
func FuzzParseStat(f *testing.F) {
	addTestdata(f, "stat")
	f.Add([]byte("1 (a) b) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 1"))
	f.Add([]byte("1 ()"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b)
		if err != nil {
			return
		}
		if s.pid <= 0 || s.ppid < 0 {
			t.Fatalf("accepted pid %d ppid %d", s.pid, s.ppid)
		}
		if !bytes.Contains(b, []byte("("+s.comm+")")) {
			t.Fatalf("comm %q not in input", s.comm)
		}
	})
}

// FuzzParseStatus: the Name line is process-controlled too.
func FuzzParseStatus(f *testing.F) {
	addTestdata(f, "status")
	f.Add([]byte("Uid:\t0\nGid:\t0\n"))
	f.Add([]byte("Name:\tx\nUid:\t4294967295\t0\t0\t0\nGid:\t1\t1\t1\t1\nPPid:\t9\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStatus(b)
		if err != nil {
			return
		}
		if s.uid < 0 || s.gid < 0 || s.ppid < 0 || s.tgid < 0 {
			t.Fatalf("negative id accepted: %+v", s)
		}
		if strings.ContainsRune(s.name, '\n') {
			t.Fatalf("name spans lines: %q", s.name)
		}
	})
}

// FuzzSplitArgs checks the bounds hold whatever the command line.
func FuzzSplitArgs(f *testing.F) {
	addTestdata(f, "cmdline")
	f.Add([]byte("a\x00\x00b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > MaxArgBytes+1 {
			b = b[:MaxArgBytes+1]
		}
		args := splitArgs(b)
		if len(args) > MaxArgs+1 {
			t.Fatalf("%d args", len(args))
		}
		total := 0
		for _, a := range args {
			total += len(a)
		}
		if total > MaxArgBytes+len(ArgsTruncated) {
			t.Fatalf("%d bytes kept", total)
		}
		if len(b) > 0 && len(args) == 0 {
			t.Fatalf("lost a non-empty command line")
		}
	})
}
