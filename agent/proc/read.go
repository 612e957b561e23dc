package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/picket-agent/picket/agent/event"
)

// Bounds on what is kept of a command line: enough to recognise a reverse
// shell or a download-and-run pipeline, small enough that a process with a
// megabyte of arguments cannot inflate every event and the process table.
const (
	MaxArgs     = 64
	MaxArgBytes = 4096
)

// ArgsTruncated is appended as the last argument when the command line was
// cut to MaxArgs / MaxArgBytes, so a consumer never mistakes a cut command
// line for the whole one.
const ArgsTruncated = "…[truncated]"

// pfKthread is PF_KTHREAD in the stat flags field: kernel threads have no
// exe and no command line, which is normal, not a read race.
const pfKthread = 0x00200000

// deletedSuffix is what the kernel appends to the exe link target when the
// binary has been unlinked.
const deletedSuffix = " (deleted)"

// Reader reads what the sensor knows about one process from /proc. It is
// safe for concurrent use; its counters are atomics.
type Reader struct {
	procRoot string
	users    *Users
	races    atomic.Uint64
}

// NewReader returns a Reader over procRoot ("/proc" when empty). users may be
// nil: then Process.User stays empty.
func NewReader(procRoot string, users *Users) *Reader {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &Reader{procRoot: strings.TrimSuffix(procRoot, "/"), users: users}
}

// Races returns how many reads found the process gone part way (ENOENT or
// ESRCH): each such read returned a Partial process rather than an error.
func (r *Reader) Races() uint64 { return r.races.Load() }

// Read is a one-off read of /proc/<pid> under procRoot without user-name
// resolution; long-running callers use a Reader with a Users cache.
func Read(procRoot string, pid int) (event.Process, error) {
	return NewReader(procRoot, nil).Read(pid)
}

// Read reads /proc/<pid>/{exe,cmdline,stat,status,cwd,cgroup}. A process that
// exits during the read is not an error: what was read comes back with
// Partial set. An error means /proc said something unparseable.
func (r *Reader) Read(pid int) (event.Process, error) {
	p := event.Process{PID: pid}
	dir := r.procRoot + "/" + strconv.Itoa(pid) + "/"
	gone := false
	note := func(err error) {
		if err != nil && isRace(err) {
			gone = true
		}
	}
	var buf [MaxArgBytes + 1]byte

	// exe and cmdline first: the kernel drops the process's memory map
	// (where argv lives) and exe link early in exit, before stat and status
	// go, so reading them first maximises what a short-lived process yields.
	exe, exeErr := readlink(dir + "exe")
	n, err := readFile(dir+"cmdline", buf[:])
	note(err)
	if err == nil {
		p.Args = splitArgs(buf[:n])
	}

	n, err = readFile(dir+"stat", buf[:])
	note(err)
	var st stat
	var parseErr error
	if err == nil {
		st, parseErr = parseStat(buf[:n])
		if parseErr == nil {
			p.PPID, p.StartTime, p.Comm = st.ppid, st.start, st.comm
		}
	}

	n, err = readFile(dir+"status", buf[:])
	note(err)
	if err == nil {
		if ss, e := parseStatus(buf[:n]); e == nil {
			p.UID, p.GID = ss.uid, ss.gid
			if r.users != nil {
				p.User = r.users.Name(p.UID)
			}
			if p.PPID == 0 {
				p.PPID = ss.ppid
			}
			if p.Comm == "" {
				p.Comm = ss.name
			}
		} else if parseErr == nil {
			parseErr = e
		}
	}

	if exeErr == nil {
		p.Exe = exe
		if strings.HasSuffix(exe, deletedSuffix) && deletedExe(dir+"exe") {
			p.Exe, p.Deleted = strings.TrimSuffix(exe, deletedSuffix), true
		}
	}
	cwd, cwdErr := readlink(dir + "cwd")
	if cwdErr == nil {
		p.Cwd = cwd
	}
	n, err = readFile(dir+"cgroup", buf[:])
	note(err)
	if err == nil {
		p.Cgroup = parseCgroup(buf[:n])
	}

	// A zombie has exited: its exe and argv are gone for good. Kernel
	// threads never had them.
	if st.state == 'Z' || st.state == 'X' {
		gone = true
	}
	if st.flags&pfKthread == 0 {
		note(exeErr)
		note(cwdErr)
	}
	if gone {
		p.Partial = true
		r.races.Add(1)
	}
	if parseErr != nil && !gone {
		return p, fmt.Errorf("proc: pid %d: %w", pid, parseErr)
	}
	return p, nil
}

// splitArgs splits a NUL-separated command line, bounded by MaxArgs and
// MaxArgBytes (b may hold one byte more than MaxArgBytes: that byte says
// the kernel had more).
func splitArgs(b []byte) []string {
	truncated := len(b) > MaxArgBytes
	if truncated {
		b = b[:MaxArgBytes]
	}
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	s := string(b) // one allocation; the arguments are substrings of it
	args := make([]string, 0, min(bytes.Count(b, []byte{0})+2, MaxArgs+1))
	for {
		if len(args) == MaxArgs {
			truncated = true
			break
		}
		i := strings.IndexByte(s, 0)
		if i < 0 {
			args = append(args, s)
			break
		}
		args = append(args, s[:i])
		s = s[i+1:]
	}
	if truncated {
		args = append(args, ArgsTruncated)
	}
	return args
}

// stat is the part of /proc/<pid>/stat the sensor uses.
type stat struct {
	pid   int
	comm  string
	state byte
	ppid  int
	flags uint64
	start uint64 // field 22, clock ticks since boot
}

var errMalformed = errors.New("malformed")

// parseStat parses /proc/<pid>/stat. comm may contain spaces and
// parentheses, so it runs from the first '(' to the last ')'.
func parseStat(b []byte) (stat, error) {
	var s stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("stat: %w: no (comm)", errMalformed)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return s, fmt.Errorf("stat: %w: pid", errMalformed)
	}
	s.pid, s.comm = pid, string(b[open+1:closing])
	// Fields after ")": state(3) ppid(4) pgrp session tty tpgid flags(9) ...
	// starttime(22), i.e. indexes 0, 1, 6 and 19.
	rest := b[closing+1:]
	for i := 0; i <= 19; i++ {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			return s, fmt.Errorf("stat: %w: %d fields", errMalformed, i)
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		f := bytes.TrimRight(rest[:end], "\n")
		rest = rest[end:]
		switch i {
		case 0:
			if len(f) != 1 {
				return s, fmt.Errorf("stat: %w: state", errMalformed)
			}
			s.state = f[0]
		case 1:
			if s.ppid, err = strconv.Atoi(string(f)); err != nil || s.ppid < 0 {
				return s, fmt.Errorf("stat: %w: ppid", errMalformed)
			}
		case 6:
			if s.flags, err = strconv.ParseUint(string(f), 10, 64); err != nil {
				return s, fmt.Errorf("stat: %w: flags", errMalformed)
			}
		case 19:
			if s.start, err = strconv.ParseUint(string(f), 10, 64); err != nil {
				return s, fmt.Errorf("stat: %w: starttime", errMalformed)
			}
		}
	}
	return s, nil
}

// status is the part of /proc/<pid>/status the sensor uses.
type status struct {
	name     string
	uid, gid int // real ids
	ppid     int
	tgid     int
}

// parseStatus parses /proc/<pid>/status. Uid and Gid are required; the real
// id (first column) is the one reported, as the account that started the
// process, which is what lineage explanations name.
func parseStatus(b []byte) (status, error) {
	var s status
	haveUID, haveGID := false, false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "Name":
			s.name = string(val)
		case "Uid", "Gid":
			f, _, _ := bytes.Cut(val, []byte{'\t'})
			id, err := strconv.ParseUint(string(bytes.TrimSpace(f)), 10, 32)
			if err != nil {
				return s, fmt.Errorf("status: %w: %s", errMalformed, key)
			}
			if key[0] == 'U' {
				s.uid, haveUID = int(id), true
			} else {
				s.gid, haveGID = int(id), true
			}
		case "PPid", "Tgid":
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 {
				return s, fmt.Errorf("status: %w: %s", errMalformed, key)
			}
			if key[0] == 'P' {
				s.ppid = n
			} else {
				s.tgid = n
			}
		}
	}
	if !haveUID || !haveGID {
		return s, fmt.Errorf("status: %w: no Uid/Gid", errMalformed)
	}
	return s, nil
}

// parseCgroup picks the cgroup path: the v2 unified line ("0::/path"),
// else the v1 name=systemd hierarchy, else the pids one; those are the
// hierarchies systemd and container runtimes always place a process in. On
// hybrid hosts a runtime may use only the v1 hierarchies and leave the
// unified one at "/", so a more specific path wins over "/".
func parseCgroup(b []byte) string {
	var v2, systemd, pids string
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		ctrl, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || len(path) == 0 {
			continue
		}
		switch {
		case string(id) == "0" && len(ctrl) == 0:
			v2 = string(path)
		case hasController(ctrl, "name=systemd"):
			systemd = string(path)
		case hasController(ctrl, "pids"):
			pids = string(path)
		}
	}
	for _, c := range [...]string{v2, systemd, pids} {
		if c != "" && c != "/" {
			return c
		}
	}
	for _, c := range [...]string{v2, systemd, pids} {
		if c != "" {
			return c
		}
	}
	return ""
}

func hasController(list []byte, name string) bool {
	for c := range bytes.SplitSeq(list, []byte{','}) {
		if string(c) == name {
			return true
		}
	}
	return false
}
