package accounts

import (
	"fmt"
	"io/fs"
	"syscall"
)

// FileSignature identifies a version of a file without reading it: inode,
// size, mtime and ctime. A rewrite that keeps the size changes mtime, a
// replacement by rename changes the inode, and a touch -d that restores
// mtime still moves ctime. The persistence sensor uses it too.
func FileSignature(fi fs.FileInfo) string {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d %d %d.%d %d.%d %o", sys.Ino, sys.Size, sys.Mtim.Sec, sys.Mtim.Nsec, sys.Ctim.Sec, sys.Ctim.Nsec, sys.Mode)
	}
	return fmt.Sprintf("%d %d %o", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
}
