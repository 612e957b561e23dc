package netsock

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/picket-agent/picket/agent/conntrack"
	"github.com/picket-agent/picket/agent/event"
)

// SourceConntrack is Event.Source for connections conntrack reported.
const SourceConntrack = "conntrack"

// Details of conntrack events whose process is not known: never guessed.
const (
	// DetailUntied: the connection was no longer in the socket table when
	// its NEW event was handled (a refused connect, a scan, a request done
	// in a millisecond), or never was (a raw-socket SYN scan).
	DetailUntied = "process not known (connection ended before it could be tied)"
	// DetailNoOwner: the socket was found but no readable process holds it.
	DetailNoOwner = "process not known (no readable process holds the socket)"
)

// Defaults of the conntrack options.
const (
	DefaultMaxConntrackNS = 64
	// flowBuffer is the channel between the listeners and the sensor's
	// goroutine; when full a listener drops (and counts) rather than let
	// the kernel's buffer overflow.
	flowBuffer = 4096
	// flowBatch bounds the flows handled between two looks at ctx.
	flowBatch = 512
	// rescanEvery rate-limits the namespace listing done when a flow comes
	// from a namespace with no known process (an `ip netns exec` started
	// after the last poll).
	rescanEvery = 250 * time.Millisecond
)

// DefaultNetNSDirs are the directories of named network namespaces (bind
// mounts) watched besides those of running processes: `ip netns` and
// Docker's.
func DefaultNetNSDirs() []string { return []string{"/run/netns", "/run/docker/netns"} }

// ConntrackStats are the conntrack side's counters, summed over the
// namespaces' listeners.
type ConntrackStats struct {
	Enabled   bool
	Listeners int // namespaces listened to
	Skipped   int // namespaces over MaxConntrackNS, not listened to
	Received  uint64
	Overruns  uint64 // kernel buffer overruns (events lost, count unknown)
	Dropped   uint64 // flows the sensor could not take in time
	Errors    uint64
	Tied      uint64 // events reported with their process
	Untied    uint64 // events reported without (DetailUntied, DetailNoOwner)
	Deduped   uint64 // flows the poller had already reported
	Ignored   uint64 // flows of other protocols than tcp and udp
	// HostUnavailable is why the host's namespace cannot be listened to.
	HostUnavailable string
	// Inactive lists the namespaces where conntrack tracks nothing ("host"
	// or the inode): no event is possible there.
	Inactive []string
}

// ctManager runs one conntrack.Listener per network namespace. sync and
// stop are called from the sensor's goroutine; stats from any.
type ctManager struct {
	opts   Options
	flows  chan conntrack.Flow
	ctx    context.Context
	logger *slog.Logger

	mu        sync.Mutex
	listeners map[uint64]*ctListener
	skipped   int
	self      uint64
}

type ctListener struct {
	l      *conntrack.Listener
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

func newCTManager(ctx context.Context, opts Options) *ctManager {
	return &ctManager{opts: opts, flows: make(chan conntrack.Flow, flowBuffer), ctx: ctx, logger: opts.Logger,
		listeners: map[uint64]*ctListener{}}
}

// sync listens to the namespaces that exist (the agent's own, those of
// processes, the named ones) and stops listening to the others: a
// listener's socket keeps its namespace alive, so it must not outlive it.
// A listener whose Run ended (namespace gone through that path, no
// permission) is forgotten and retried at the next sync if the namespace
// is still there, except in the host namespace when unavailable.
func (m *ctManager) sync(nss namespaces, root string) {
	want := map[uint64]string{nss.self: ""}
	for _, id := range nss.ids {
		if id != nss.self && len(nss.pids[id]) > 0 {
			want[id] = root + "/" + strconv.Itoa(nss.pids[id][0]) + "/ns/net"
		}
	}
	for _, dir := range m.opts.NetNSDirs {
		names, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, n := range names {
			p := dir + "/" + n.Name()
			var st syscall.Stat_t
			if syscall.Stat(p, &st) != nil || st.Ino == nss.self {
				continue
			}
			if _, ok := want[st.Ino]; !ok {
				want[st.Ino] = p
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.self = nss.self
	for id, cl := range m.listeners {
		_, live := want[id]
		select {
		case <-cl.done:
			if id == nss.self && cl.err != nil {
				continue // unavailable in the host: kept for its reason
			}
			delete(m.listeners, id)
			continue
		default:
		}
		if !live {
			cl.cancel()
			<-cl.done
			delete(m.listeners, id)
		}
	}
	ids := make([]uint64, 0, len(want))
	for id := range want {
		if _, ok := m.listeners[id]; !ok {
			ids = append(ids, id)
		}
	}
	// The host first, then by inode: the same namespaces win the cap.
	slices.SortFunc(ids, func(a, b uint64) int {
		rank := func(x uint64) int {
			if x == nss.self {
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
	m.skipped = 0
	for _, id := range ids {
		if len(m.listeners) >= m.opts.MaxConntrackNS {
			m.skipped++
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		cl := &ctListener{cancel: cancel, done: make(chan struct{}),
			l: conntrack.New(conntrack.Options{NSPath: want[id], NetNS: id, ProcRoot: m.opts.ProcRoot,
				ReadBuffer: m.opts.ConntrackReadBuffer, Logger: m.logger})}
		m.listeners[id] = cl
		go func() {
			cl.err = cl.l.Run(ctx, m.flows)
			close(cl.done)
		}()
	}
}

// stop ends every listener and waits for them.
func (m *ctManager) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, cl := range m.listeners {
		cl.cancel()
		<-cl.done
		delete(m.listeners, id)
	}
}

// stats sums the listeners' counters into st.
func (m *ctManager) stats(st *ConntrackStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st.Enabled = true
	st.Skipped = m.skipped
	st.Inactive = st.Inactive[:0]
	var inactive []uint64
	for id, cl := range m.listeners {
		ls := cl.l.Stats()
		st.Received += ls.Received
		st.Overruns += ls.Overruns
		st.Dropped += ls.Dropped
		st.Errors += ls.Errors
		if id == m.self && ls.Unavailable != "" {
			st.HostUnavailable = ls.Unavailable
			continue
		}
		st.Listeners++
		if ls.Inactive != "" {
			inactive = append(inactive, id)
		}
	}
	slices.Sort(inactive)
	for _, id := range inactive {
		if id == m.self {
			st.Inactive = append([]string{"host"}, st.Inactive...)
		} else {
			st.Inactive = append(st.Inactive, strconv.FormatUint(id, 10))
		}
	}
}

// ctText is the conntrack part of Live's detail.
func ctText(st ConntrackStats, interval time.Duration) (degraded bool, s string) {
	if !st.Enabled {
		return false, "; polling only (conntrack off): connections shorter than the interval are missed"
	}
	if st.HostUnavailable != "" {
		return true, fmt.Sprintf("; conntrack unavailable: %s; polling only: connections shorter than %s are missed", st.HostUnavailable, interval)
	}
	s = fmt.Sprintf("; conntrack NEW events in %d namespaces: %d received, %d reported with their process, %d without, %d already polled",
		st.Listeners, st.Received, st.Tied, st.Untied, st.Deduped)
	if st.Overruns > 0 || st.Dropped > 0 {
		s += fmt.Sprintf(", %d kernel buffer overruns and %d flows dropped (events lost)", st.Overruns, st.Dropped)
	}
	if st.Errors > 0 {
		s += fmt.Sprintf(", %d listener errors", st.Errors)
	}
	if st.Skipped > 0 {
		degraded = true
		s += fmt.Sprintf("; %d namespaces over the limit not listened to", st.Skipped)
	}
	if len(st.Inactive) > 0 {
		s += fmt.Sprintf("; conntrack not active in %d namespaces (%s): nothing registered its hooks there (no nftables/iptables rule using ct, no NAT, no container runtime), so no event is possible and connections shorter than %s are missed there",
			len(st.Inactive), strings.Join(st.Inactive, ", "), interval)
	}
	return degraded, s
}

// flowEvents turns conntrack flows into net.connect events, tying each to
// its process through the namespace's socket table read now (the
// connection is often still there right after NEW) and the inode→pid
// cache. A flow the poller already reported (same namespace, protocol and
// ends) is skipped; one reported here is remembered in s.conns so the next
// poll does not report it again.
func (s *Sensor) flowEvents(flows []conntrack.Flow) []event.Event {
	type pending struct {
		f     *conntrack.Flow
		ns    uint64
		entry *Entry
		key   sockKey
	}
	if s.nss.self == 0 { // no poll yet: the agent's own namespace must be known
		if nss, err := listNamespaces(s.opts.ProcRoot); err == nil {
			s.nss = nss
		}
	}
	s.procs = map[int]*event.Process{}
	defer func() { s.procs = nil }()
	tables := map[uint64]map[string][]Entry{} // per namespace, per table, read once per batch
	want := map[uint64]map[uint64]bool{}
	var ps []pending
	var ignored, deduped uint64
	lports := map[portKey]bool{}
	s.listenPorts(lports)
	for i := range flows {
		f := &flows[i]
		if f.Proto != TCP && f.Proto != UDP {
			ignored++
			continue
		}
		ns := f.NetNS
		if ns == s.nss.self {
			ns = 0
		}
		// A NEW TCP flow leaving a listening port answers a connection
		// the namespace accepted (conntrack makes one when the original
		// entry went, e.g. once the peer is blocked): sshd replying to the
		// brute-forcer it accepted is not sshd connecting out. (A bound
		// UDP socket does send from its own port: not skipped.)
		if f.Proto == TCP && lports[portKey{ns, false, int(f.Src.Port())}] {
			ignored++
			continue
		}
		proto := f.Proto
		if f.Src.Addr().Is6() {
			proto += "6"
		}
		e := s.findSocket(tables, ns, f)
		if e != nil {
			proto = e.Proto // a dual-stack socket's IPv4 connection is in tcp6
		}
		k := sockKey{ns: ns, proto: proto, local: f.Src.Addr(), lport: int(f.Src.Port()), remote: f.Dst.Addr(), rport: int(f.Dst.Port())}
		if _, ok := s.conns[k]; ok {
			deduped++
			continue
		}
		if len(s.conns) < s.opts.MaxTracked {
			s.conns[k] = struct{}{}
		}
		if e != nil && e.Inode != 0 && !s.owners.known(e.Inode) {
			if want[ns] == nil {
				want[ns] = map[uint64]bool{}
			}
			want[ns][e.Inode] = true
		}
		ps = append(ps, pending{f: f, ns: ns, entry: e, key: k})
	}
	walked := s.owners.walked
	for ns, w := range want {
		s.owners.resolve(w, s.nsPids(ns), 2*s.opts.MaxTracked)
	}
	evs := make([]event.Event, 0, len(ps))
	var tied, untied uint64
	for _, p := range ps {
		sock := event.Socket{Proto: p.key.proto, Local: p.key.local, LPort: p.key.lport, Remote: p.key.remote, RPort: p.key.rport, NetNS: p.ns}
		detail := DetailUntied
		var proc *event.Process
		if p.entry != nil {
			sock.Inode = p.entry.Inode
			detail = DetailNoOwner
			if p.entry.Inode != 0 {
				proc = s.process(s.owners.lookup(p.entry.Inode))
			}
		}
		if proc != nil {
			detail = ""
			tied++
		} else {
			untied++
		}
		ev := s.event(p.f.Time, event.NetConnect, detail, sock, proc)
		ev.Source = SourceConntrack
		evs = append(evs, ev)
	}
	s.setStats(func(st *Stats) {
		st.Conntrack.Tied += tied
		st.Conntrack.Untied += untied
		st.Conntrack.Deduped += deduped
		st.Conntrack.Ignored += ignored
		st.FDWalks += s.owners.walked - walked
	})
	return evs
}

// nsPids returns the processes of namespace ns (0: the agent's own) as of
// the last listing, re-listing (rate-limited) when none is known.
func (s *Sensor) nsPids(ns uint64) []int {
	id := ns
	if id == 0 {
		id = s.nss.self
	}
	if len(s.nss.pids[id]) == 0 && time.Since(s.rescanned) > rescanEvery {
		s.rescanned = time.Now()
		if nss, err := listNamespaces(s.opts.ProcRoot); err == nil {
			s.nss = nss
		}
	}
	return s.nss.pids[id]
}

// findSocket finds the socket of flow f in namespace ns's tables (read at
// most once per batch): for TCP the exact connection; for UDP the socket
// bound to the source port, connected to the destination or not connected
// at all (sendto).
func (s *Sensor) findSocket(tables map[uint64]map[string][]Entry, ns uint64, f *conntrack.Flow) *Entry {
	byProto := tables[ns]
	if byProto == nil {
		byProto = s.readNSTables(ns, f.Proto)
		tables[ns] = byProto
	} else if _, ok := byProto[f.Proto]; !ok {
		for p, es := range s.readNSTables(ns, f.Proto) {
			byProto[p] = es
		}
	}
	src, dst := f.Src.Addr(), f.Dst.Addr()
	sport, dport := int(f.Src.Port()), int(f.Dst.Port())
	for _, p := range []string{f.Proto, f.Proto + "6"} {
		es := byProto[p]
		for i := range es {
			e := &es[i]
			if e.LPort != sport {
				continue
			}
			if f.Proto == TCP {
				if e.RPort == dport && e.Remote == dst && e.Local == src {
					return e
				}
				continue
			}
			if (e.Local == src || e.Local.IsUnspecified()) && ((e.RPort == dport && e.Remote == dst) || e.RPort == 0) {
				return e
			}
		}
	}
	return nil
}

// readNSTables reads proto's two tables (v4 and v6) of namespace ns,
// through /proc/self for the agent's own and through one of its processes
// otherwise. The result has both keys even when nothing could be read, so
// a batch reads a namespace's tables once.
func (s *Sensor) readNSTables(ns uint64, proto string) map[string][]Entry {
	out := map[string][]Entry{proto: nil, proto + "6": nil}
	var dirs []string
	if ns == 0 {
		dirs = []string{s.opts.ProcRoot + "/self/net/"}
	} else {
		for _, pid := range s.nsPids(ns) {
			dirs = append(dirs, s.opts.ProcRoot+"/"+strconv.Itoa(pid)+"/net/")
		}
	}
	for _, dir := range dirs {
		found := false
		for _, p := range []string{proto, proto + "6"} {
			b, err := os.ReadFile(dir + p)
			if err != nil {
				continue
			}
			found = true
			out[p], _ = ParseProcNet(p, b)
		}
		if found {
			break
		}
	}
	return out
}
