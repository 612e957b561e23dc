package actions

import (
	"net/netip"
	"os"
	"strconv"

	"github.com/picket-agent/picket/actions/proctree"
	"github.com/picket-agent/picket/actions/sshd"
	"github.com/picket-agent/picket/agent/whitelist"
)

// Guard is the never-touch set. It is checked at apply time, not only at
// plan time, so a whitelist that changed in between still protects.
type Guard struct {
	// Admin lists the admin whitelist: never blocked, rate-limited or
	// paused, whatever the score.
	Admin []netip.Prefix
	// Protected are further prefixes never acted against: the config
	// repository's remote and the host's own addresses.
	Protected []netip.Prefix
	// Users are accounts never disabled (root is always among them).
	Users []string
	// PIDs are processes never killed (PID 1, the agent and its
	// ancestors are always among them).
	PIDs []int
	// Proc is the proc mount ("/proc"), read to recognise kernel threads
	// and sshd's listener.
	Proc string
	// Self is the agent's pid (os.Getpid() when 0).
	Self int
}

// Refuse returns why kind must never be taken against target, or "".
func (g *Guard) Refuse(kind, target string) string {
	switch kind {
	case BlockSource, BlockDestination, RateLimit:
		p, err := whitelist.ParsePrefix(target)
		if err != nil {
			return "not an address or prefix"
		}
		return g.refuseNet(p)
	case KillTree:
		pid, err := strconv.Atoi(target)
		if err != nil || pid <= 0 {
			return "not a process id"
		}
		return g.refusePID(pid)
	case DisableUser, EndSessions:
		if target == "" || target == "root" {
			return "the root account is never touched"
		}
		for _, u := range g.Users {
			if u == target {
				return "user whitelist"
			}
		}
	}
	return ""
}

func (g *Guard) refuseNet(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified() || p.Bits() == 0:
		return "covers every address"
	case a.IsMulticast():
		return "multicast"
	}
	// An overlap, not containment: blocking 198.51.100.0/24 would also
	// block an admin at 198.51.100.7.
	for _, w := range g.Admin {
		if w.Overlaps(p) {
			return "admin whitelist (" + w.String() + ")"
		}
	}
	for _, w := range g.Protected {
		if w.Overlaps(p) {
			return "protected address (" + w.String() + ": the config remote or this host)"
		}
	}
	return ""
}

func (g *Guard) refusePID(pid int) string {
	self := g.Self
	if self == 0 {
		self = os.Getpid()
	}
	proc := g.Proc
	if proc == "" {
		proc = "/proc"
	}
	if pid == 1 {
		return "PID 1"
	}
	for _, p := range g.PIDs {
		if p == pid {
			return "protected process"
		}
	}
	// The agent and its ancestors (a supervisor, a shell that started it).
	for p, n := self, 0; p > 1 && n < 64; n++ {
		if p == pid {
			return "the agent or one of its ancestors"
		}
		st, err := proctree.Stat(proc, p)
		if err != nil {
			break
		}
		p = st.PPID
	}
	st, err := proctree.Stat(proc, pid)
	if err != nil {
		return "" // gone: the executor will say so
	}
	if st.KernelThread {
		return "kernel thread"
	}
	if sshd.IsListener(proc, pid) {
		return "sshd's listener"
	}
	return ""
}
