//go:build linux

package proctree

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// member is one process of the set being killed, pinned by its pidfd.
type member struct {
	t  Target
	fd int
}

// killer holds one KillTree or KillMatching call's state.
type killer struct {
	o         Options
	proc      string
	protected map[int]bool
	members   map[int]*member
	order     []*member
	skipped   []Target
	// strict refuses the whole kill when a protected process is found
	// (a tree); otherwise it is skipped (a match set).
	strict bool
	// live maps the pids of the current scan to their start times, so a
	// member whose pid was recycled is not taken for a parent.
	live map[int]uint64
}

// isParent reports whether ppid is a member still alive as itself.
func (k *killer) isParent(ppid int) bool {
	m, in := k.members[ppid]
	return in && k.live[ppid] == m.t.StartTime
}

// KillTree stops and then kills t and every descendant of it. It refuses
// (before signalling anything) PID 1, kernel threads, the caller, its
// ancestors and Options.Protect, also when one of them is a descendant of t:
// the tree is then resumed with SIGCONT and ErrProtected returned. A Target
// whose start time does not match the process now holding the pid is
// ErrGone.
func KillTree(ctx context.Context, t Target, o Options) (Result, error) {
	if t.PID <= 0 {
		return Result{}, fmt.Errorf("pid %d: %w", t.PID, ErrInvalid)
	}
	k, err := newKiller(o, true)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	s, err := readStat(k.proc, t.PID)
	if err != nil {
		return Result{}, err
	}
	if t.StartTime != 0 && s.start != t.StartTime {
		return Result{}, fmt.Errorf("pid %d started at %d, not %d: %w", t.PID, s.start, t.StartTime, ErrGone)
	}
	if err := k.check(s); err != nil {
		return Result{}, err
	}
	if s.dead() {
		return Result{}, fmt.Errorf("pid %d is a zombie: %w", t.PID, ErrGone)
	}
	if err := k.add(s); err != nil {
		return Result{}, err
	}
	children := func(all []stat) []stat {
		var out []stat
		for _, c := range all {
			if k.isParent(c.ppid) {
				out = append(out, c)
			}
		}
		return out
	}
	if err := k.freeze(ctx, children); err != nil {
		k.resume()
		return Result{}, err
	}
	return k.kill(ctx)
}

// KillMatching stops and then kills every process for which match returns
// true, and (when descendants is set) every descendant of those, until no
// new one appears. Protected processes (PID 1, kernel threads, the caller,
// its ancestors, Options.Protect) are skipped and listed in Result.Skipped.
// Method is always MethodPidfd.
func KillMatching(ctx context.Context, match func(Info) bool, descendants bool, o Options) (Result, error) {
	o.Cgroup = "-"
	k, err := newKiller(o, false)
	if err != nil {
		return Result{}, err
	}
	defer k.close()
	sel := func(all []stat) []stat {
		var out []stat
		for _, c := range all {
			if (descendants && k.isParent(c.ppid)) || match(c.info()) {
				out = append(out, c)
			}
		}
		return out
	}
	if err := k.freeze(ctx, sel); err != nil {
		k.resume()
		return Result{}, err
	}
	if len(k.order) == 0 {
		return Result{Method: MethodPidfd, Skipped: k.skipped}, nil
	}
	return k.kill(ctx)
}

func newKiller(o Options, strict bool) (*killer, error) {
	k := &killer{o: o, proc: o.proc(), protected: map[int]bool{1: true}, members: map[int]*member{}, strict: strict, live: map[int]uint64{}}
	for _, p := range o.Protect {
		k.protected[p] = true
	}
	// The caller and its ancestors: killing them would kill the agent or
	// the session that runs it.
	for pid := os.Getpid(); pid > 1 && !k.protected[pid]; {
		k.protected[pid] = true
		s, err := readStat(k.proc, pid)
		if err != nil {
			return nil, fmt.Errorf("proctree: ancestors of self: %w", err)
		}
		pid = s.ppid
	}
	return k, nil
}

// check refuses processes that must never be signalled.
func (k *killer) check(s stat) error {
	if s.kernelThread() {
		return fmt.Errorf("pid %d (%s): %w", s.pid, s.comm, ErrKernelThread)
	}
	if k.protected[s.pid] {
		return fmt.Errorf("pid %d (%s): %w", s.pid, s.comm, ErrProtected)
	}
	return nil
}

// add pins s with a pidfd, checks that the pid still names the same
// process, and stops it.
func (k *killer) add(s stat) error {
	fd, err := unix.PidfdOpen(s.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: %w", s.pid, ErrGone)
	}
	if errors.Is(err, unix.ENOSYS) {
		return ErrUnsupported
	}
	if err != nil {
		return fmt.Errorf("proctree: pidfd_open %d: %w", s.pid, err)
	}
	// The pid could have been recycled between reading stat and opening
	// the pidfd; once open, the fd pins this process, so one more read
	// settles it.
	now, err := readStat(k.proc, s.pid)
	if err != nil || now.start != s.start {
		unix.Close(fd)
		return fmt.Errorf("pid %d changed while opening: %w", s.pid, ErrGone)
	}
	m := &member{t: Target{PID: s.pid, StartTime: s.start}, fd: fd}
	k.members[s.pid] = m
	k.order = append(k.order, m)
	if err := unix.PidfdSendSignal(fd, unix.SIGSTOP, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("proctree: SIGSTOP %d: %w", s.pid, err)
	}
	return nil
}

// freeze grows the member set with what sel picks from a full scan, until
// every member is stopped and a scan finds nothing new: a stopped process
// cannot fork, so the set is then complete.
func (k *killer) freeze(ctx context.Context, sel func([]stat) []stat) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("proctree: freeze: %w", err)
		}
		k.waitStopped(ctx)
		all, err := scanAll(k.proc)
		if err != nil {
			return err
		}
		clear(k.live)
		for _, s := range all {
			k.live[s.pid] = s.start
		}
		added := 0
		for _, s := range sel(all) {
			if _, in := k.members[s.pid]; in || s.dead() {
				continue
			}
			if err := k.check(s); err != nil {
				if k.strict {
					return err
				}
				if !slices.Contains(k.skipped, Target{s.pid, s.start}) {
					k.skipped = append(k.skipped, Target{s.pid, s.start})
				}
				continue
			}
			if err := k.add(s); err != nil {
				if errors.Is(err, ErrGone) {
					continue // exited meanwhile: nothing to kill
				}
				return err
			}
			added++
		}
		if added == 0 {
			return nil
		}
	}
}

// waitStopped waits, up to Options.Settle, until every member is stopped
// or dead.
func (k *killer) waitStopped(ctx context.Context) {
	deadline := time.Now().Add(k.o.settle())
	for delay := 200 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		all := true
		for _, m := range k.order {
			s, err := readStat(k.proc, m.t.PID)
			if err == nil && s.start == m.t.StartTime && !s.stopped() {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(delay)
	}
}

// resume undoes the freeze when the kill is refused.
func (k *killer) resume() {
	for _, m := range k.order {
		_ = unix.PidfdSendSignal(m.fd, unix.SIGCONT, nil, 0)
	}
}

// kill sends SIGKILL to every member (after cgroup.kill when the root owns
// its cgroup) and waits for them to exit.
func (k *killer) kill(ctx context.Context) (Result, error) {
	r := Result{Method: MethodPidfd, Skipped: k.skipped}
	log := k.o.logger()
	if cg := k.ownCgroup(); cg != "" {
		if err := os.WriteFile(filepath.Join(k.cgroupRoot(), cg, "cgroup.kill"), []byte("1"), 0); err != nil {
			log.Warn("cgroup.kill failed; killing by pidfd", "cgroup", cg, "err", err)
		} else {
			r.Method, r.Cgroup = MethodCgroupKill, cg
		}
	}
	for _, m := range k.order {
		if err := unix.PidfdSendSignal(m.fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return r, fmt.Errorf("proctree: SIGKILL %d: %w", m.t.PID, err)
		}
		r.Killed = append(r.Killed, m.t)
	}
	log.Info("killed processes", "root", r.Killed[0].PID, "count", len(r.Killed), "method", r.Method)
	return r, k.waitExit(ctx)
}

// waitExit polls the pidfds: one becomes readable when its process exits.
func (k *killer) waitExit(ctx context.Context) error {
	deadline := time.Now().Add(k.o.wait())
	pending := slices.Clone(k.order)
	for len(pending) > 0 {
		fds := make([]unix.PollFd, len(pending))
		for i, m := range pending {
			fds[i] = unix.PollFd{Fd: int32(m.fd), Events: unix.POLLIN}
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		_, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("proctree: poll pidfds: %w", err)
		}
		next := pending[:0]
		for i, m := range pending {
			if fds[i].Revents == 0 {
				next = append(next, m)
			}
		}
		pending = next
	}
	if len(pending) > 0 {
		pids := make([]string, len(pending))
		for i, m := range pending {
			pids[i] = strconv.Itoa(m.t.PID)
		}
		return fmt.Errorf("pids %s: %w", strings.Join(pids, ","), ErrSurvived)
	}
	return nil
}

func (k *killer) close() {
	for _, m := range k.order {
		unix.Close(m.fd)
	}
}

// cgroupRoot returns the cgroup v2 mount point, "" when there is none or
// it is disabled.
func (k *killer) cgroupRoot() string {
	if k.o.Cgroup == "-" {
		return ""
	}
	if k.o.Cgroup != "" {
		return k.o.Cgroup
	}
	f, err := os.Open(filepath.Join(k.proc, "self", "mountinfo"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "... mountpoint opts - fstype source superopts"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return unescapeMount(f[4])
		}
	}
	return ""
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// ownCgroup returns the root's cgroup v2 path when the tree owns it: not
// the root cgroup, cgroup.kill exists, and every process in it and in the
// cgroups below it is a member. "" otherwise.
func (k *killer) ownCgroup() string {
	root := k.cgroupRoot()
	if root == "" || len(k.order) == 0 {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(k.proc, strconv.Itoa(k.order[0].t.PID), "cgroup"))
	if err != nil {
		return ""
	}
	var cg string
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			cg = p
		}
	}
	if cg == "" || cg == "/" || strings.Contains(cg, "..") || strings.HasSuffix(cg, " (deleted)") {
		return ""
	}
	dir := filepath.Join(root, cg)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		return ""
	}
	owned := true
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return err
		}
		for f := range strings.FieldsSeq(string(procs)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return err
			}
			if _, in := k.members[pid]; !in {
				owned = false
				return filepath.SkipAll
			}
		}
		return nil
	})
	if err != nil || !owned {
		return ""
	}
	return cg
}
