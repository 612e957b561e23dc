package journal

import "syscall"

// dieWithParent makes journalctl die with the agent.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
