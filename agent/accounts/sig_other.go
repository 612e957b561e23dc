//go:build !linux

package accounts

import (
	"fmt"
	"io/fs"
)

// FileSignature identifies a version of a file without reading it (size,
// mtime, mode; Linux adds inode and ctime).
func FileSignature(fi fs.FileInfo) string {
	return fmt.Sprintf("%d %d %o", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
}
