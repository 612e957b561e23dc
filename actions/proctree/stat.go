package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pfKthread is PF_KTHREAD in the flags of /proc/<pid>/stat (field 9).
const pfKthread = 0x00200000

// stat is the part of /proc/<pid>/stat proctree needs.
type stat struct {
	pid   int
	comm  string
	state byte
	ppid  int
	flags uint64
	start uint64
}

func (s stat) kernelThread() bool {
	// kthreadd is pid 2 and parent of every other kernel thread; the flag
	// is the authoritative test.
	return s.flags&pfKthread != 0 || s.pid == 2 || s.ppid == 2
}

func (s stat) dead() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

func (s stat) stopped() bool { return s.state == 'T' || s.state == 't' || s.dead() }

var errStat = errors.New("malformed stat")

// parseStat parses one /proc/<pid>/stat line. comm may contain spaces and
// parentheses, so the fields are located from the last ')'.
func parseStat(b []byte) (stat, error) {
	open := bytes.IndexByte(b, '(')
	closeP := bytes.LastIndexByte(b, ')')
	if open < 1 || closeP < open {
		return stat{}, errStat
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return stat{}, errStat
	}
	// After ") ": field 3 (state) is rest[0], field 4 ppid rest[1],
	// field 9 flags rest[6], field 22 starttime rest[19].
	rest := strings.Fields(string(b[closeP+1:]))
	if len(rest) < 20 || len(rest[0]) != 1 {
		return stat{}, errStat
	}
	s := stat{pid: pid, comm: string(b[open+1 : closeP]), state: rest[0][0]}
	if s.ppid, err = strconv.Atoi(rest[1]); err != nil || s.ppid < 0 {
		return stat{}, errStat
	}
	if s.flags, err = strconv.ParseUint(rest[6], 10, 64); err != nil {
		return stat{}, errStat
	}
	if s.start, err = strconv.ParseUint(rest[19], 10, 64); err != nil {
		return stat{}, errStat
	}
	return s, nil
}

// readStat reads /proc/<pid>/stat; ErrGone when the process is not there.
func readStat(proc string, pid int) (stat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return stat{}, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return stat{}, fmt.Errorf("proctree: read stat of %d: %w", pid, err)
	}
	s, err := parseStat(b)
	if err != nil {
		return stat{}, fmt.Errorf("proctree: stat of %d: %w", pid, err)
	}
	return s, nil
}

func (s stat) info() Info {
	return Info{PID: s.pid, PPID: s.ppid, StartTime: s.start, Comm: s.comm, State: s.state, KernelThread: s.kernelThread()}
}

// Stat reads one process's /proc/<pid>/stat under proc ("/proc" when
// empty): the action guard, sshd's listener lookup and the kill executor's
// pid-reuse check read processes through it. ErrGone when it is not there.
func Stat(proc string, pid int) (Info, error) {
	if proc == "" {
		proc = "/proc"
	}
	s, err := readStat(proc, pid)
	if err != nil {
		return Info{}, err
	}
	return s.info(), nil
}

// scanAll reads the stat of every process under proc. Processes that vanish
// during the scan or whose stat does not parse are left out: the scan is a
// snapshot, and a later round sees what changed.
func scanAll(proc string) ([]stat, error) {
	d, err := os.Open(proc)
	if err != nil {
		return nil, fmt.Errorf("proctree: scan %s: %w", proc, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("proctree: scan %s: %w", proc, err)
	}
	out := make([]stat, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '1' || n[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if s, err := readStat(proc, pid); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// UIDs returns the real, effective, saved and filesystem uids of pid from
// /proc/<pid>/status, for KillMatching predicates that select by user.
func UIDs(proc string, pid int) ([4]int, error) {
	var u [4]int
	if proc == "" {
		proc = "/proc"
	}
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return u, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil {
		return u, fmt.Errorf("proctree: read status of %d: %w", pid, err)
	}
	return parseUIDs(b)
}

func parseUIDs(b []byte) ([4]int, error) {
	var u [4]int
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 4 {
			break
		}
		for i := range u {
			v, err := strconv.Atoi(f[i])
			if err != nil || v < 0 {
				return u, fmt.Errorf("proctree: status Uid line %q: %w", line, errStat)
			}
			u[i] = v
		}
		return u, nil
	}
	return u, fmt.Errorf("proctree: status without Uid line: %w", errStat)
}
