package scenarios

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// forkWatch records fork and exit events from the kernel's proc connector
// so the runner can tell which processes belonged to a scenario (the
// descendants of its run.sh) from everything else the agent sees on the
// host: the runner's own `picket` invocations, other test packages running
// in parallel. Only process-level events are kept (threads are skipped).
type forkWatch struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	events []procEvent
	lost   error // set when the kernel dropped events (ENOBUFS) or reading failed
}

type procEvent struct {
	fork        bool // else exit
	parent, pid int
}

const (
	netlinkConnector  = 11 // NETLINK_CONNECTOR
	cnIdxProc         = 1  // CN_IDX_PROC
	cnValProc         = 1  // CN_VAL_PROC
	procCnMcastListen = 1  // PROC_CN_MCAST_LISTEN
	procEventFork     = 0x00000001
	procEventExit     = 0x80000000
	cnMsgLen          = 20 // struct cn_msg
)

// watchForks subscribes to the proc connector. It needs root (CAP_NET_ADMIN)
// and the initial PID and user namespaces.
func watchForks() (*forkWatch, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkConnector)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	fail := func(what string, err error) (*forkWatch, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("proc connector %s: %w", what, err)
	}
	// A large buffer: a scenario can fork thousands of processes quickly.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20); err != nil {
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<20)
	}
	tv := syscall.Timeval{Usec: 100_000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fail("timeout", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fail("bind", err)
	}
	msg := make([]byte, syscall.NLMSG_HDRLEN+cnMsgLen+4)
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint16(msg[4:], syscall.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(os.Getpid()))
	le.PutUint32(msg[16:], cnIdxProc)
	le.PutUint32(msg[20:], cnValProc)
	le.PutUint16(msg[32:], 4)
	le.PutUint32(msg[36:], procCnMcastListen)
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fail("listen", err)
	}
	w := &forkWatch{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *forkWatch) loop() {
	defer close(w.done)
	defer syscall.Close(w.fd)
	buf := make([]byte, 1<<16)
	le := binary.LittleEndian
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, _, err := syscall.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			w.mu.Lock()
			if w.lost == nil {
				w.lost = fmt.Errorf("reading proc connector: %w", err)
			}
			w.mu.Unlock()
			if errors.Is(err, syscall.ENOBUFS) {
				continue
			}
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			d := m.Data
			if len(d) < cnMsgLen+16 {
				continue
			}
			d = d[cnMsgLen:]
			what := le.Uint32(d)
			ev := d[16:] // after what, cpu, timestamp
			switch what {
			case procEventFork:
				if len(ev) < 16 {
					continue
				}
				ptgid, cpid, ctgid := le.Uint32(ev[4:]), le.Uint32(ev[8:]), le.Uint32(ev[12:])
				if cpid != ctgid {
					continue // a new thread
				}
				w.add(procEvent{fork: true, parent: int(ptgid), pid: int(ctgid)})
			case procEventExit:
				if len(ev) < 8 {
					continue
				}
				pid, tgid := le.Uint32(ev), le.Uint32(ev[4:])
				if pid != tgid {
					continue
				}
				w.add(procEvent{pid: int(tgid)})
			}
		}
	}
}

func (w *forkWatch) add(e procEvent) {
	w.mu.Lock()
	w.events = append(w.events, e)
	w.mu.Unlock()
}

// Close stops watching.
func (w *forkWatch) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Descendants returns every process that descended from root while the
// watch ran (root included), or an error when events were lost so the set
// may be incomplete.
func (w *forkWatch) Descendants(root int) (map[int]bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	live := map[int]bool{root: true}
	ever := map[int]bool{root: true}
	rootForked := false // an exit of root's pid before its fork is an older process's
	for _, e := range w.events {
		switch {
		case e.fork && e.pid == root:
			rootForked = true
			live[root] = true
		case e.fork && live[e.parent]:
			live[e.pid] = true
			ever[e.pid] = true
		case !e.fork && (e.pid != root || rootForked):
			delete(live, e.pid)
		}
	}
	return ever, w.lost
}
