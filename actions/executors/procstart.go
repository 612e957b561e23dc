package executors

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/actions/proctree"
)

// clockTicks is USER_HZ, 100 on every Linux architecture picket runs on.
const clockTicks = 100

// startOf returns a process's start time in clock ticks since boot (field
// 22 of /proc/<pid>/stat) and as wall-clock time.
func startOf(proc string, pid int) (uint64, time.Time, error) {
	st, err := proctree.Stat(proc, pid)
	if err != nil {
		return 0, time.Time{}, err
	}
	boot, err := bootTime(proc)
	if err != nil {
		return st.StartTime, time.Time{}, err
	}
	return st.StartTime, boot.Add(time.Duration(st.StartTime) * time.Second / clockTicks), nil
}

func bootTime(proc string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(s, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("no btime in %s/stat", proc)
}
