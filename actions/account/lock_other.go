//go:build !linux

package account

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockPwd takes an flock on path; other systems have no lckpwdf
// convention worth following.
func lockPwd(path string, _ time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("account: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("account: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
