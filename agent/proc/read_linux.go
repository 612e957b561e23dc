package proc

import (
	"errors"

	"golang.org/x/sys/unix"
)

// readFile reads path into buf with raw syscalls: os.Open would also
// register each /proc file with the poller (an extra failing epoll_ctl per
// open) and allocate an *os.File, and this runs six times per exec.
func readFile(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

func readlink(path string) (string, error) {
	var buf [unix.PathMax]byte
	for {
		n, err := unix.Readlink(path, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// deletedExe confirms a " (deleted)" suffix: stat through /proc/<pid>/exe
// reaches the running inode even when unlinked, and its link count is 0
// then; a file that is really named "x (deleted)" still has links.
func deletedExe(link string) bool {
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return true // the fake trees in tests; a vanished process
	}
	return st.Nlink == 0
}

// isRace reports the errors /proc gives for a process that exited under us.
func isRace(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}
