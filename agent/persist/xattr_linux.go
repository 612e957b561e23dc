package persist

import (
	"errors"

	"golang.org/x/sys/unix"
)

// fileCapabilities returns the raw security.capability xattr of path
// (not following symlinks), or nil when there is none.
func fileCapabilities(path string) ([]byte, error) {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(path, XattrCapability, buf)
	if err != nil {
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	return buf[:n], nil
}
