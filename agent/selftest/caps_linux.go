package selftest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability bits the agent uses (linux/capability.h).
var wanted = []struct {
	bit  uint
	name string
	why  string
}{
	{12, "CAP_NET_ADMIN", "nftables blocks and the netlink proc connector"},
	{5, "CAP_KILL", "killing attacker process trees"},
	{2, "CAP_DAC_READ_SEARCH", "reading every log and /proc entry"},
	{19, "CAP_SYS_PTRACE", "reading other processes' exe and fds"},
}

func capProbe() []Result {
	eff, err := effectiveCaps()
	if err != nil {
		return []Result{{"capabilities", Missing, err.Error()}}
	}
	var out []Result
	for _, w := range wanted {
		r := Result{Name: strings.ToLower(w.name), State: OK, Reason: "has " + w.name + " (" + w.why + ")"}
		if eff&(1<<w.bit) == 0 {
			r.State, r.Reason = Degraded, "lacks "+w.name+": "+w.why+" off"
		}
		out = append(out, r)
	}
	return out
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("read capabilities: no CapEff in /proc/self/status")
}
