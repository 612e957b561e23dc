//go:build !linux

package journal

import "syscall"

// dieWithParent has no equivalent outside Linux: the follower ends on its
// next write to the closed pipe.
func dieWithParent() *syscall.SysProcAttr { return nil }
