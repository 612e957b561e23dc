// Package instance makes `picket run` the only agent on a state directory:
// it holds an exclusive flock on DIR/picket.lock for as long as it runs,
// with its pid written in the file for the message a second agent prints
// and for the standalone emergency-stop script. Two agents on one state
// directory would each re-assert the other's actions, double every
// journal entry and fight over the read positions.
//
// The lock lives in the kernel, not in the file's existence: it goes away
// with the process however it ends (SIGKILL, OOM kill), so a stale file
// never blocks a restart. The file itself is never removed; removing a
// locked file lets a third process lock a fresh inode beside the holder.
package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the lock file inside the state directory.
const FileName = "picket.lock"

// Path returns the lock file's path inside a state directory.
func Path(stateDir string) string { return filepath.Join(stateDir, FileName) }

// HeldError says another process holds the lock.
type HeldError struct {
	PID int // 0 when the holder had not written its pid yet
	Dir string
}

func (e *HeldError) Error() string {
	pid := "unknown"
	if e.PID > 0 {
		pid = strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("another picket (pid %s) is running on %s", pid, e.Dir)
}

// Lock is a held lock; Release it when the agent stops.
type Lock struct {
	f *os.File
}

// Acquire takes the lock on stateDir (created 0700 if needed) without
// waiting: a second agent must fail at once, not queue behind the first.
func Acquire(stateDir string) (*Lock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("instance: create %s: %w", stateDir, err)
	}
	path := Path(stateDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("instance: open %s: %w", path, err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("instance: lock %s: %w", path, err)
	}
	if held {
		f.Close()
		return nil, &HeldError{PID: holderPID(path), Dir: stateDir}
	}
	if err := writePID(f, os.Getpid()); err != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("instance: write %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release empties the file (no stale pid for the script to find) and
// drops the lock. Safe on a nil Lock and twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	terr := l.f.Truncate(0)
	uerr := unlock(l.f)
	cerr := l.f.Close()
	l.f = nil
	return errors.Join(terr, uerr, cerr)
}

// Holder returns the pid written in stateDir's lock file and whether a
// process holds the lock now (for status and tests).
func Holder(stateDir string) (pid int, held bool, err error) {
	path := Path(stateDir)
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("instance: %w", err)
	}
	defer f.Close()
	held, err = tryLock(f)
	if err != nil {
		return 0, false, fmt.Errorf("instance: %w", err)
	}
	if !held {
		unlock(f)
		return 0, false, nil
	}
	return holderPID(path), true, nil
}

func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// holderPID reads the holder's pid. The holder writes it right after it
// locks, so an empty file is given a moment before "unknown".
func holderPID(path string) int {
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}
