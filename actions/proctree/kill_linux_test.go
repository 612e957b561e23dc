//go:build linux

package proctree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// tree is a process tree started by a test, every member of which carries
// a marker in its environment, so the test can find survivors without
// trusting the code under test.
type tree struct {
	cmd    *exec.Cmd
	marker string
}

func startTree(t *testing.T, script string, attr *syscall.SysProcAttr) *tree {
	t.Helper()
	integration.Binary(t, "sh")
	marker := fmt.Sprintf("PICKET_PROCTREE_TEST=%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), marker)
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &tree{cmd: cmd, marker: marker}
	t.Cleanup(func() {
		// Whatever the test did, leave nothing behind.
		for _, p := range tr.alive() {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return tr
}

// alive lists the non-zombie processes carrying the marker.
func (tr *tree) alive() []int {
	var out []int
	all, _ := scanAll("/proc")
	for _, s := range all {
		if s.dead() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.pid), "environ"))
		if err == nil && bytes.Contains(env, []byte("\x00"+tr.marker+"\x00")) || bytes.HasPrefix(env, []byte(tr.marker+"\x00")) {
			out = append(out, s.pid)
		}
	}
	return out
}

// waitCount waits until at least n marked processes run.
func (tr *tree) waitCount(t *testing.T, n int) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := tr.alive()
		if len(a) >= n {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree has %d processes, want %d", len(a), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startOf(t *testing.T, pid int) uint64 {
	t.Helper()
	s, err := readStat("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return s.start
}

func TestKillTree(t *testing.T) {
	integration.Root(t) // pidfd_send_signal to another uid's process, cgroup.kill
	tests := []struct {
		name   string
		script string
		min    int // processes to wait for before killing
	}{
		{"children and grandchildren", "sleep 100 & (sleep 100 & sleep 100; wait) & sh -c 'sleep 100 & wait' & wait", 7},
		{"forking loop", "while :; do (sleep 100 & sleep 100) & sleep 0.01; done", 30},
		{"ignores SIGTERM and SIGHUP", "trap '' TERM HUP; sleep 100 & wait", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := startTree(t, tc.script, nil)
			tr.waitCount(t, tc.min)
			r, err := KillTree(context.Background(), Target{PID: tr.cmd.Process.Pid}, Options{Cgroup: "-"})
			if err != nil {
				t.Fatalf("KillTree: %v", err)
			}
			if r.Method != MethodPidfd || r.Killed[0].PID != tr.cmd.Process.Pid {
				t.Errorf("result = %+v", r)
			}
			// The loop's short sleeps may exit on their own before the freeze.
			if len(r.Killed) < tc.min-1 {
				t.Errorf("killed %d, but %d were running before", len(r.Killed), tc.min)
			}
			if a := tr.alive(); len(a) != 0 {
				t.Errorf("survivors: %v", a)
			}
		})
	}
}

func TestKillTreeRefuses(t *testing.T) {
	integration.Root(t)
	tr := startTree(t, "sleep 100 & wait", nil)
	procs := tr.waitCount(t, 2)
	root := tr.cmd.Process.Pid
	child := procs[0]
	if child == root {
		child = procs[1]
	}
	self := os.Getpid()
	tests := []struct {
		name string
		t    Target
		o    Options
		want error
	}{
		{"pid 1", Target{PID: 1}, Options{}, ErrProtected},
		{"kernel thread", Target{PID: 2}, Options{}, ErrKernelThread},
		{"self", Target{PID: self}, Options{}, ErrProtected},
		{"parent of self", Target{PID: os.Getppid()}, Options{}, ErrProtected},
		{"protected root", Target{PID: root}, Options{Protect: []int{root}}, ErrProtected},
		{"protected descendant", Target{PID: root}, Options{Protect: []int{child}}, ErrProtected},
		{"stale start time", Target{PID: root, StartTime: startOf(t, root) + 1}, Options{}, ErrGone},
		{"no such pid", Target{PID: 1 << 30}, Options{}, ErrGone},
		{"zero pid", Target{}, Options{}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == ErrKernelThread {
				if s, err := readStat("/proc", 2); err != nil || s.comm != "kthreadd" {
					t.Skip("pid 2 is not kthreadd in this pid namespace")
				}
			}
			_, err := KillTree(context.Background(), tc.t, tc.o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("KillTree(%+v) = %v, want %v", tc.t, err, tc.want)
			}
			// Nothing was killed, and a refused tree runs again.
			deadline := time.Now().Add(2 * time.Second)
			for {
				a := tr.alive()
				stopped := false
				for _, p := range a {
					if s, err := readStat("/proc", p); err == nil && s.stopped() {
						stopped = true
					}
				}
				if len(a) == 2 && !stopped {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after refusal: alive %v, some stopped: %v", a, stopped)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// newCgroup creates an empty cgroup for the test below the cgroup v2 mount
// (removed afterwards) and returns its mount point, path and an fd to
// clone into it.
func newCgroup(t *testing.T, name string) (root, dir string, fd int) {
	t.Helper()
	k := &killer{o: Options{}, proc: "/proc"}
	root = k.cgroupRoot()
	if root == "" {
		integration.Skip(t, "no cgroup v2 mount")
	}
	dir = filepath.Join(root, fmt.Sprintf("picket-proctree-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		integration.Skip(t, "cannot create a cgroup: "+err.Error())
	}
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Close(fd)
		for range 100 {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", dir)
	})
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		integration.Skip(t, "kernel without cgroup.kill")
	}
	return root, dir, fd
}

// TestKillTreeCgroup runs a tree in a cgroup of its own, so the kill goes
// through cgroup.kill; a tree that shares its cgroup with another process
// is killed by pidfds and the other process lives.
func TestKillTreeCgroup(t *testing.T) {
	integration.Root(t)
	root, dir, fd := newCgroup(t, "own")
	tr := startTree(t, "sleep 100 & (sleep 100 & wait) & wait", &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd})
	tr.waitCount(t, 4)
	r, err := KillTree(context.Background(), Target{PID: tr.cmd.Process.Pid}, Options{Cgroup: root})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + filepath.Base(dir); r.Method != MethodCgroupKill || r.Cgroup != want || len(r.Killed) != 4 {
		t.Errorf("result = %+v, want cgroup.kill of %s and 4 processes", r, want)
	}
	if a := tr.alive(); len(a) != 0 {
		t.Errorf("survivors: %v", a)
	}

	_, _, shared := newCgroup(t, "shared")
	other := startTree(t, "exec sleep 100", &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: shared})
	others := len(other.waitCount(t, 1))
	tr = startTree(t, "sleep 100 & wait", &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: shared})
	tr.waitCount(t, 2)
	r, err = KillTree(context.Background(), Target{PID: tr.cmd.Process.Pid}, Options{Cgroup: root})
	if err != nil || r.Method != MethodPidfd {
		t.Fatalf("shared cgroup: %+v, %v", r, err)
	}
	if len(other.alive()) != others || len(tr.alive()) != 0 {
		t.Errorf("shared cgroup: other alive %v, tree alive %v", other.alive(), tr.alive())
	}
}

func TestKillMatching(t *testing.T) {
	integration.Root(t)
	a := startTree(t, "sleep 100 & (sleep 100 & wait) & wait", nil)
	b := startTree(t, "sleep 100 & wait", nil)
	a.waitCount(t, 4)
	b.waitCount(t, 2)
	rootA := a.cmd.Process.Pid
	self := os.Getpid()
	r, err := KillMatching(context.Background(), func(i Info) bool { return i.PID == rootA || i.PID == self }, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Killed) != 4 || len(r.Skipped) != 1 || r.Skipped[0].PID != self {
		t.Errorf("result = %+v", r)
	}
	if len(a.alive()) != 0 || len(b.alive()) != 2 {
		t.Errorf("alive: a %v, b %v", a.alive(), b.alive())
	}
	// Nothing matches: nothing to do.
	r, err = KillMatching(context.Background(), func(Info) bool { return false }, true, Options{})
	if err != nil || len(r.Killed) != 0 {
		t.Errorf("empty match: %+v, %v", r, err)
	}
}

func BenchmarkScanAll(b *testing.B) {
	for b.Loop() {
		if _, err := scanAll("/proc"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKillTree measures freezing and killing a ten-process tree
// (starting it is not timed).
func BenchmarkKillTree(b *testing.B) {
	integration.Root(b)
	script := "for i in 1 2 3 4 5 6 7 8 9; do sleep 100 & done; wait"
	for b.Loop() {
		b.StopTimer()
		cmd := exec.Command("sh", "-c", script)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			all, _ := scanAll("/proc")
			n := 0
			for _, s := range all {
				if s.ppid == cmd.Process.Pid {
					n++
				}
			}
			if n == 9 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		r, err := KillTree(context.Background(), Target{PID: cmd.Process.Pid}, Options{Cgroup: "-"})
		if err != nil || len(r.Killed) != 10 {
			b.Fatalf("%+v %v", r, err)
		}
		b.StopTimer()
		_ = cmd.Wait()
		b.StartTimer()
	}
}
