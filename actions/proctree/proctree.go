// Package proctree kills a process tree (or every process matching a
// predicate) without racing pid reuse: each process is identified by its pid
// and its start time, pinned with a pidfd whose start time is checked after
// opening, stopped with SIGSTOP until no new process appears, and only then
// killed with SIGKILL through the pidfd, so a signal can never reach a
// process that merely inherited a recycled pid. When the tree's root owns a
// cgroup v2 of its own, cgroup.kill ends it in one write as well.
//
// The action engine (package actions) uses KillTree for the "kill the
// process tree" action, and actions/account uses KillMatching to end a
// disabled user's sessions. Both journal what Result returns; a kill has no
// undo.
package proctree

import (
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrGone means the target no longer exists, or its pid now belongs
	// to another process (start time differs).
	ErrGone = errors.New("proctree: process gone or pid reused")
	// ErrProtected means the target, or a process in its tree, is PID 1,
	// the caller itself, one of its ancestors, or in Options.Protect.
	ErrProtected = errors.New("proctree: protected process")
	// ErrKernelThread means the target is a kernel thread.
	ErrKernelThread = errors.New("proctree: kernel thread")
	// ErrInvalid means the request itself makes no sense (pid <= 0).
	ErrInvalid = errors.New("proctree: invalid target")
	// ErrSurvived means a process was sent SIGKILL but had not exited
	// within Options.Wait (typically stuck in uninterruptible sleep; it
	// dies when the kernel lets it).
	ErrSurvived = errors.New("proctree: process survived SIGKILL")
	// ErrUnsupported is returned on systems without pidfds.
	ErrUnsupported = errors.New("proctree: unsupported on this system")
)

// Methods reported in Result.Method.
const (
	MethodPidfd      = "pidfd"
	MethodCgroupKill = "cgroup.kill"
)

// Target names one process unambiguously: a pid alone can be reused.
type Target struct {
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat (clock ticks since
	// boot). 0 means "whatever process has PID now": read at call time.
	StartTime uint64 `json:"start_time"`
}

// Options configure a kill. The zero value is usable.
type Options struct {
	// Proc is the proc filesystem's mount point ("/proc" when empty).
	Proc string
	// Cgroup is the cgroup v2 mount point. Empty means find it in
	// <Proc>/self/mountinfo; "-" disables cgroup.kill.
	Cgroup string
	// Protect lists pids never to signal, in addition to PID 1, kernel
	// threads, the caller and its ancestors.
	Protect []int
	// Logger receives one line per kill; nil discards.
	Logger *slog.Logger
	// Settle bounds how long to wait for the processes to reach the
	// stopped state before killing anyway (a process in uninterruptible
	// sleep cannot stop); 2 s when zero.
	Settle time.Duration
	// Wait bounds how long to wait for the killed processes to exit;
	// 5 s when zero.
	Wait time.Duration
}

// Result says what was killed, as plain data for the journal.
type Result struct {
	// Killed are the processes sent SIGKILL, root first.
	Killed []Target `json:"killed"`
	// Skipped are processes that matched but were protected
	// (KillMatching only).
	Skipped []Target `json:"skipped,omitempty"`
	// Method is MethodCgroupKill when the tree's cgroup was killed as a
	// whole (pidfds were signalled too), MethodPidfd otherwise.
	Method string `json:"method"`
	// Cgroup is the cgroup v2 path that was killed, when Method is
	// MethodCgroupKill.
	Cgroup string `json:"cgroup,omitempty"`
}

// Info is what a KillMatching predicate sees of a process.
type Info struct {
	PID       int
	PPID      int
	StartTime uint64
	Comm      string
	State     byte
	// KernelThread is set for kthreadd and its children (PF_KTHREAD).
	KernelThread bool
}

func (o *Options) proc() string {
	if o.Proc == "" {
		return "/proc"
	}
	return o.Proc
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o *Options) settle() time.Duration {
	if o.Settle <= 0 {
		return 2 * time.Second
	}
	return o.Settle
}

func (o *Options) wait() time.Duration {
	if o.Wait <= 0 {
		return 5 * time.Second
	}
	return o.Wait
}
