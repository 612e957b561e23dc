// Package sshd finds where this host's OpenSSH server listens: the
// addresses of its listener process(es), read from /proc. Pausing new SSH
// logins needs sshd's actual ports (not a guessed 22), the health check
// connects to them, and the action guard never kills the listener.
package sshd

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/actions/proctree"
	"github.com/picket-agent/picket/agent/netsock"
)

// Listener is one listening socket of an sshd listener process.
type Listener struct {
	PID  int
	Addr netip.AddrPort
}

// Listeners returns sshd's listening TCP sockets, found under proc
// ("/proc"), of the processes IsListener accepts.
func Listeners(proc string) ([]Listener, error) {
	if proc == "" {
		proc = "/proc"
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("sshd: read %s: %w", proc, err)
	}
	var out []Listener
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if IsListener(proc, pid) {
			out = append(out, listening(proc, pid)...)
		}
	}
	slices.SortFunc(out, func(a, b Listener) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return a.PID - b.PID
	})
	return out, nil
}

// Ports returns the distinct ports of ls.
func Ports(ls []Listener) []uint16 {
	var out []uint16
	for _, l := range ls {
		if !slices.Contains(out, l.Addr.Port()) {
			out = append(out, l.Addr.Port())
		}
	}
	slices.Sort(out)
	return out
}

// IsListener reports whether pid is an sshd listener process: an sshd
// whose parent is not an sshd (session processes are the listener's
// children), or whose command line says "[listener]" (OpenSSH >= 9.8).
func IsListener(proc string, pid int) bool {
	if proc == "" {
		proc = "/proc"
	}
	p, err := proctree.Stat(proc, pid)
	if err != nil || p.Comm != "sshd" {
		return false
	}
	if parent, err := proctree.Stat(proc, p.PPID); err != nil || parent.Comm != "sshd" {
		return true
	}
	cmd, _ := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	return bytes.Contains(cmd, []byte("[listener]"))
}

// listening matches the process's socket inodes with the listening sockets
// of its own network namespace.
func listening(proc string, pid int) []Listener {
	dir := filepath.Join(proc, strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil
	}
	inodes := map[uint64]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64); err == nil {
			inodes[n] = true
		}
	}
	var out []Listener
	for _, proto := range []string{netsock.TCP, netsock.TCP6} {
		data, err := os.ReadFile(filepath.Join(dir, "net", proto))
		if err != nil {
			continue
		}
		entries, _ := netsock.ParseProcNet(proto, data)
		for _, e := range entries {
			if e.State == netsock.StateListen && inodes[e.Inode] {
				out = append(out, Listener{PID: pid, Addr: netip.AddrPortFrom(e.Local, uint16(e.LPort))})
			}
		}
	}
	return out
}
