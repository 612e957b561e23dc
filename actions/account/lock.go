package account

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Locking follows shadow-utils 4.13 as Debian 12 builds it (usermod,
// passwd, vipw link lckpwdf from glibc): commonio_lock first takes glibc's
// lckpwdf(), a POSIX write lock (fcntl F_SETLKW, 15 s timeout) on
// /etc/.pwd.lock, and then the link-style lock <file>.lock: it writes its
// pid into <file>.<pid>, hard-links that to <file>.lock, and treats an
// existing lock whose pid is dead as stale. Taking both here excludes
// shadow-utils, glibc's putspent users and a second picket alike. The
// first lock is taken as an open-file-description lock, which conflicts
// with POSIX locks of other processes and, unlike them, also with other
// goroutines of this one.

// pwdLockTimeout is glibc's lckpwdf timeout.
const pwdLockTimeout = 15 * time.Second

// withLock runs fn holding both locks of the database file path.
func withLock(path string, fn func() error) error {
	unlock, err := lockPwd(filepath.Join(filepath.Dir(path), ".pwd.lock"), pwdLockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	if err := linkLock(path); err != nil {
		return err
	}
	defer os.Remove(path + ".lock")
	return fn()
}

// linkLock takes shadow-utils' lock <path>.lock, retrying for a second: a
// holder of this lock also holds .pwd.lock (which we hold), so one found
// here is stale or from a tool that is about to release it.
func linkLock(path string) error {
	lock := path + ".lock"
	tmp := path + "." + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fmt.Errorf("account: lock %s: %w", lock, err)
	}
	defer os.Remove(tmp)
	deadline := time.Now().Add(time.Second)
	for {
		err := os.Link(tmp, lock)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("account: lock %s: %w", lock, err)
		}
		if staleLock(lock) {
			// As shadow-utils: remove the stale lock, then try again.
			_ = os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("account: %s held: %w", lock, ErrLocked)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// staleLock reports whether the pid recorded in lock is not running.
func staleLock(lock string) bool {
	b, err := os.ReadFile(lock)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false // unknown format: leave it to a human
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
