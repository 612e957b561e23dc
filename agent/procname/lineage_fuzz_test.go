package procname

import (
	"strings"
	"testing"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/schema"
)

// FuzzLineage: the argv, names and executables of a lineage are the
// attacker's to choose; classifying them never panics, Depth stays within
// the lineage, and a lineage without PID 1 or a session name on top has no
// session.
func FuzzLineage(f *testing.F) {
	p, err := schema.Default()
	if err != nil {
		f.Fatal(err)
	}
	s, r := NewSession(&p.Processes), NewRuntimes(&p.Processes)
	f.Add("bash\x00-bash", "/usr/bin/bash", "sshd", "/memfd:runc_cloned:/proc/self/exe", 1)
	f.Add("busybox\x00sh\x00-c", "/bin/busybox", "runc:[2:INIT]", "/memfd:", 7)
	f.Add("\x00", "", "", "/", 0)
	f.Fuzz(func(t *testing.T, args, exe, comm, childExe string, topPID int) {
		argv := strings.Split(args, "\x00")
		lineage := []event.Ancestor{
			{PID: 10, Comm: comm, Exe: exe, Args: argv},
			{PID: 9, Comm: "tmux: server", Exe: "/usr/bin/tmux", Args: []string{"tmux"}},
			{PID: topPID, Comm: comm, Exe: exe, Args: argv},
		}
		if d := s.Depth(lineage); d < 0 || d > len(lineage) {
			t.Fatalf("Depth %d of %d", d, len(lineage))
		}
		if topPID != 1 && !s.Names.Match(comm, exe) && s.Depth(lineage) != len(lineage) {
			t.Fatalf("a session below an unknown top: %q %q", comm, exe)
		}
		Interactive(argv)
		r.Match(&event.Process{PID: 11, Comm: comm, Exe: childExe, Args: argv, Lineage: lineage})
	})
}
