//go:build linux

package account

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPwd takes a write lock on the whole of path (glibc's lckpwdf file)
// as an open-file-description lock, polling until timeout.
func lockPwd(path string, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("account: lock %s: %w", path, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			f.Close()
			return nil, fmt.Errorf("account: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("account: %s held for %s: %w", path, timeout, ErrLocked)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Closing the file releases the lock.
	return func() { f.Close() }, nil
}
