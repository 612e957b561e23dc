package netsock

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// namespaces groups the live processes by network namespace. Reading
// /proc/<pid>/ns/net of every process each poll costs one readlink per
// process; it is needed because `ip netns exec` and container runtimes move
// a process into its namespace after it appears.
type namespaces struct {
	self uint64           // the agent's own namespace: the "host"
	pids map[uint64][]int // namespace inode → pids, highest (newest) first
	ids  []uint64         // namespace inodes, self first, then ascending
}

// listNamespaces reads root/self/ns/net and root/<pid>/ns/net for every
// process. Processes whose links cannot be read (exited, or not ours to
// inspect) are left out: their sockets stay in the namespace tables, only
// unattributed.
func listNamespaces(root string) (namespaces, error) {
	ns := namespaces{pids: map[uint64][]int{}}
	self, err := nsInode(root + "/self/ns/net")
	if err != nil {
		return ns, err
	}
	ns.self = self
	for _, pid := range listPIDs(root) {
		ino, err := nsInode(root + "/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil {
			continue
		}
		ns.pids[ino] = append(ns.pids[ino], pid)
	}
	for ino, pids := range ns.pids {
		slices.Sort(pids)
		slices.Reverse(pids)
		if ino != ns.self {
			ns.ids = append(ns.ids, ino)
		}
	}
	slices.Sort(ns.ids)
	ns.ids = append([]uint64{ns.self}, ns.ids...)
	return ns, nil
}

// listPIDs returns the numeric entries of root (processes, not threads).
func listPIDs(root string) []int {
	d, err := os.Open(root)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// nsInode reads a namespace link ("net:[4026531833]").
func nsInode(link string) (uint64, error) {
	t, err := os.Readlink(link)
	if err != nil {
		return 0, err
	}
	return bracketInode(t, "net:[")
}

// bracketInode parses "<prefix><digits>]".
func bracketInode(t, prefix string) (uint64, error) {
	s, ok := strings.CutPrefix(t, prefix)
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, errors.New("netsock: unexpected link " + strconv.Quote(t))
	}
	return strconv.ParseUint(s[:len(s)-1], 10, 64)
}

// owners maps socket inodes to the pid holding them. The map is filled by
// walking /proc/<pid>/fd only when the tables show an inode it does not
// know, over the processes of that socket's namespace first, newest first,
// and only until every unknown inode is found (then, if some remain, over
// all other processes once); so a quiet host costs no fd walk at all. Inodes that were looked for and not found are remembered as
// 0 so they are not looked for again every poll. prune keeps the map to the
// sockets the tables still show.
type owners struct {
	root   string
	pid    map[uint64]int
	walked int // processes whose fds were read, for stats
}

func newOwners(root string) *owners {
	return &owners{root: root, pid: map[uint64]int{}}
}

// lookup returns the pid holding inode, 0 when unknown.
func (o *owners) lookup(inode uint64) int { return o.pid[inode] }

// resolve finds the owners of the inodes in want (a set; found entries are
// deleted from it) among pids, reading each process's fd directory until
// want is empty or max inodes are cached. Every socket inode met on the
// way is cached, since the next unknown inode likely belongs to a process
// already read.
func (o *owners) resolve(want map[uint64]bool, pids []int, max int) {
	o.walk(want, pids, max)
	if len(want) > 0 {
		// Not in its namespace's processes as listed: a process started
		// (or moved in by `ip netns exec`) after the listing may own it.
		// Walk every other process, at most once per call; the result,
		// found or not, is cached, so this is paid once per socket.
		walked := make(map[int]bool, len(pids))
		for _, p := range pids {
			walked[p] = true
		}
		var rest []int
		for _, p := range listPIDs(o.root) {
			if !walked[p] {
				rest = append(rest, p)
			}
		}
		slices.Sort(rest)
		slices.Reverse(rest)
		o.walk(want, rest, max)
	}
	// Not found anywhere: a kernel socket, or its process is gone or
	// unreadable. Remember that, within the bound.
	for ino := range want {
		if len(o.pid) < max {
			o.pid[ino] = 0
		}
	}
}

// walk reads the fd links of pids until want is empty.
func (o *owners) walk(want map[uint64]bool, pids []int, max int) {
	for _, pid := range pids {
		if len(want) == 0 {
			return
		}
		dir := o.root + "/" + strconv.Itoa(pid) + "/fd"
		d, err := os.Open(dir)
		if err != nil {
			continue // exited or not ours to read
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) && len(names) == 0 {
			continue
		}
		o.walked++
		for _, n := range names {
			t, err := os.Readlink(dir + "/" + n)
			if err != nil || !strings.HasPrefix(t, "socket:[") {
				continue
			}
			ino, err := bracketInode(t, "socket:[")
			if err != nil {
				continue
			}
			if want[ino] {
				delete(want, ino)
				o.pid[ino] = pid
			} else if cur, ok := o.pid[ino]; (!ok || cur == 0) && len(o.pid) < max {
				o.pid[ino] = pid
			}
		}
	}
}

// known reports whether inode was looked up before (found or not).
func (o *owners) known(inode uint64) bool {
	_, ok := o.pid[inode]
	return ok
}

// prune forgets inodes not in live.
func (o *owners) prune(live map[uint64]bool) {
	for ino := range o.pid {
		if !live[ino] {
			delete(o.pid, ino)
		}
	}
}
