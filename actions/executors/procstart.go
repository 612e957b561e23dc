package executors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture picket runs on.
const clockTicks = 100

// startOf returns a process's start time in clock ticks since boot (field
// 22 of /proc/<pid>/stat) and as wall-clock time.
func startOf(proc string, pid int) (uint64, time.Time, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, time.Time{}, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, time.Time{}, fmt.Errorf("malformed stat of %d", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// After the comm, field 3 (state) is f[0]; field 22 is f[19].
	if len(f) < 20 {
		return 0, time.Time{}, fmt.Errorf("short stat of %d", pid)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("stat of %d: start time: %w", pid, err)
	}
	boot, err := bootTime(proc)
	if err != nil {
		return ticks, time.Time{}, err
	}
	return ticks, boot.Add(time.Duration(ticks) * time.Second / clockTicks), nil
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
