package netsock

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/agent/conntrack"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/proc"
	"github.com/picket-agent/picket/agent/sensor"
)

// Defaults of Options.
const (
	DefaultInterval   = 2 * time.Second
	DefaultMaxTracked = 32768
)

// Event details the sensor sets.
const (
	// DetailInitial marks the inventory of the first poll: listeners and
	// connections that existed when the agent started, which detectors of
	// "new" things skip.
	DetailInitial = "initial"
	// DetailSynSent marks a TCP connection seen while still connecting (a
	// connect to a filtered port stays there; a scan shows many).
	DetailSynSent = "syn-sent"
)

// SourceProcfs is Event.Source for what the poller found.
const SourceProcfs = "procfs"

// Options configures a Sensor.
type Options struct {
	// ProcRoot is the proc mount ("/proc"); tests point it at a fake tree.
	ProcRoot string
	// Interval between polls (DefaultInterval when 0). Connections shorter
	// than it are only seen through conntrack.
	Interval time.Duration
	// MaxTracked bounds the listeners and connections remembered between
	// polls, and the socket-inode cache (DefaultMaxTracked when 0).
	// Sockets beyond it are counted, not reported.
	MaxTracked int
	// Users resolves uids to names; nil reads /etc/passwd.
	Users *proc.Users
	// Enrich, when set, completes the process of an event (lineage and
	// container from the process table). Called from the sensor's
	// goroutine; it must be safe for use alongside the table's owner.
	Enrich func(p *event.Process)
	// Conntrack also listens to conntrack NEW events in every network
	// namespace (the agent's own, those of processes, the named ones under
	// NetNSDirs), so connections shorter than Interval are reported too
	// (Event.Source SourceConntrack), tied to their process when the
	// socket is still there. Off when false (the agent's wiring turns it
	// on); without root it degrades to polling and Live says why.
	Conntrack bool
	// MaxConntrackNS bounds the namespaces listened to
	// (DefaultMaxConntrackNS when 0).
	MaxConntrackNS int
	// NetNSDirs hold named namespaces' bind mounts (nil:
	// DefaultNetNSDirs()).
	NetNSDirs []string
	// ConntrackReadBuffer is each listener's receive buffer (the
	// conntrack package's default when 0).
	ConntrackReadBuffer int
	Logger              *slog.Logger
}

// Stats are the sensor's counters, for status.
type Stats struct {
	Polls       uint64
	Errors      uint64
	LastError   string
	Namespaces  int    // network namespaces read in the last poll
	Listeners   int    // listeners tracked
	Connections int    // outbound connections tracked
	Untracked   int    // sockets over MaxTracked in the last poll (not reported)
	Unowned     int    // tracked listeners whose process was not found
	FDWalks     int    // processes whose fd directory was read, in total
	BadLines    uint64 // unparseable table lines, in total
	Conntrack   ConntrackStats
}

// sockKey identifies a socket across polls; the inode is left out so a
// listener reopened on the same address between two polls is not news.
type sockKey struct {
	ns     uint64
	proto  string
	local  netip.Addr
	lport  int
	remote netip.Addr
	rport  int
}

func keyOf(ns uint64, e *Entry) sockKey {
	return sockKey{ns: ns, proto: e.Proto, local: e.Local, lport: e.LPort, remote: e.Remote, rport: e.RPort}
}

func compareKeys(a, b sockKey) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.proto, b.proto), a.local.Compare(b.local),
		cmp.Compare(a.lport, b.lport), a.remote.Compare(b.remote), cmp.Compare(a.rport, b.rport))
}

// portKey is a listening port in a namespace: tcp and tcp6 share the port
// space (a dual-stack listener shows in tcp6 only), as do udp and udp6.
type portKey struct {
	ns   uint64
	udp  bool
	port int
}

// listener is what is remembered of a reported listener, to report its
// close with the process that had opened it.
type listener struct {
	sock event.Socket
	proc *event.Process
}

// Sensor polls the socket tables of every network namespace and reports
// listeners opened and closed and outbound connections. It implements
// sensor.Sensor. Poll and Run must not be called concurrently; Live and
// Stats may be called from any goroutine.
type Sensor struct {
	opts      Options
	reader    *proc.Reader
	owners    *owners
	listeners map[sockKey]*listener
	conns     map[sockKey]struct{}
	polled    bool
	buf       bytes.Buffer
	procs     map[int]*event.Process // per poll or batch of flows
	nss       namespaces             // of the last listing
	rescanned time.Time
	// diagLogged: the fall back from sock_diag to /proc/net was logged.
	diagLogged bool
	ct         *ctManager // while Run runs with Options.Conntrack

	mu    sync.Mutex
	stats Stats
}

// New returns a Sensor; zero options take their defaults.
func New(opts Options) *Sensor {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = DefaultMaxTracked
	}
	if opts.Users == nil {
		opts.Users = proc.NewUsers("")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConntrackNS <= 0 {
		opts.MaxConntrackNS = DefaultMaxConntrackNS
	}
	if opts.NetNSDirs == nil {
		opts.NetNSDirs = DefaultNetNSDirs()
	}
	return &Sensor{opts: opts, reader: proc.NewReader(opts.ProcRoot, opts.Users), owners: newOwners(opts.ProcRoot),
		listeners: map[sockKey]*listener{}, conns: map[sockKey]struct{}{}}
}

// Name is the sensor's name (no offset: sockets are live state).
func (s *Sensor) Name() string { return "network" }

// Run polls until ctx ends. The first poll reports the inventory (Detail
// DetailInitial). A failing poll is counted and retried at the next tick:
// the tables are live state, nothing is lost by waiting. With
// Options.Conntrack, the namespaces each poll finds are listened to for
// conntrack NEW events between polls.
func (s *Sensor) Run(ctx context.Context, out chan<- sensor.Item) error {
	send := func(evs []event.Event) bool {
		for i := range evs {
			select {
			case out <- sensor.Item{Event: &evs[i]}:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	var flows chan conntrack.Flow
	if s.opts.Conntrack {
		m := newCTManager(ctx, s.opts)
		s.mu.Lock()
		s.ct = m
		s.mu.Unlock()
		flows = m.flows
		defer func() {
			m.stop()
			s.setStats(func(st *Stats) { m.stats(&st.Conntrack) })
			s.mu.Lock()
			s.ct = nil
			s.mu.Unlock()
		}()
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	poll := true
	batch := make([]conntrack.Flow, 0, flowBatch)
	for {
		if poll {
			poll = false
			evs, err := s.Poll(time.Now().Round(0))
			if err != nil {
				s.opts.Logger.Warn("network sensor poll failed", "err", err)
			}
			if !send(evs) {
				return ctx.Err()
			}
			if s.ct != nil {
				nss := s.nss
				if nss.self == 0 {
					if self, err := nsInode(s.opts.ProcRoot + "/self/ns/net"); err == nil {
						nss.self = self
					}
				}
				if nss.self != 0 {
					s.ct.sync(nss, s.opts.ProcRoot)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			poll = true
		case f := <-flows:
			batch = append(batch[:0], f)
		drain:
			for len(batch) < flowBatch {
				select {
				case f := <-flows:
					batch = append(batch, f)
				default:
					break drain
				}
			}
			if !send(s.flowEvents(batch)) {
				return ctx.Err()
			}
		}
	}
}

// Live reports how the sensor runs, for status: degraded when polls fail,
// sockets exceed MaxTracked, or conntrack was asked for and cannot run.
// The detail says whether connections shorter than the interval are seen
// (conntrack) or missed, and where.
func (s *Sensor) Live() (degraded bool, detail string) {
	st := s.Stats()
	if st.Polls == 0 {
		return false, "starting"
	}
	detail = fmt.Sprintf("/proc/net poll every %s: %d namespaces, %d listeners (%d without process), %d outbound connections tracked",
		s.opts.Interval, st.Namespaces, st.Listeners, st.Unowned, st.Connections)
	if st.Untracked > 0 {
		degraded = true
		detail += fmt.Sprintf("; %d sockets over the limit of %d not tracked", st.Untracked, s.opts.MaxTracked)
	}
	if st.Errors > 0 {
		detail += fmt.Sprintf("; %d failed polls (last: %s)", st.Errors, st.LastError)
		degraded = degraded || st.LastError != ""
	}
	if s.opts.Conntrack && !st.Conntrack.Enabled {
		st.Conntrack.Enabled = true // asked for, Run not (yet) started
	}
	d, ct := ctText(st.Conntrack, s.opts.Interval)
	return degraded || d, detail + ct
}

// Stats returns a copy of the counters, with the conntrack listeners'
// summed while Run runs.
func (s *Sensor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Conntrack.Inactive = slices.Clone(st.Conntrack.Inactive)
	if s.ct != nil {
		s.ct.stats(&st.Conntrack)
	}
	return st
}

func (s *Sensor) setStats(f func(st *Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// nsTable is one namespace's sockets in one poll.
type nsTable struct {
	ns      uint64 // 0 for the agent's own
	pids    []int
	entries []Entry
}

// Poll reads every namespace's tables once and returns the events of what
// changed since the previous poll, in a deterministic order (listeners
// opened, connections, listeners closed; each by namespace, protocol and
// address). The first poll returns the inventory.
func (s *Sensor) Poll(now time.Time) ([]event.Event, error) {
	tables, bad, err := s.readAll()
	if err != nil {
		s.setStats(func(st *Stats) { st.Polls++; st.Errors++; st.LastError = err.Error() })
		return nil, err
	}
	first := !s.polled
	s.polled = true
	s.procs = map[int]*event.Process{}
	limit := s.opts.MaxTracked

	// Listening ports first: a connected socket on a listening port was
	// accepted, not initiated.
	curL := map[sockKey]*Entry{}
	lports := map[portKey]bool{}
	live := map[uint64]bool{}
	nsPids := map[uint64][]int{}
	for ti := range tables {
		t := &tables[ti]
		nsPids[t.ns] = t.pids
		for i := range t.entries {
			e := &t.entries[i]
			e.NetNS = t.ns
			if e.Inode != 0 {
				live[e.Inode] = true
			}
			if e.Listening() {
				curL[keyOf(t.ns, e)] = e
				lports[portKey{t.ns, e.IsUDP(), e.LPort}] = true
			}
		}
	}
	// Listeners tracked from earlier polls count too: a poll whose listener
	// dump missed one (a race between dumps, a namespace read twice) must
	// not turn the connections it accepted into outbound ones (sshd's
	// accepted client read as sshd connecting out).
	s.listenPorts(lports)
	curC := map[sockKey]*Entry{}
	for ti := range tables {
		t := &tables[ti]
		for i := range t.entries {
			e := &t.entries[i]
			if e.Outgoing() && !lports[portKey{t.ns, e.IsUDP(), e.LPort}] {
				curC[keyOf(t.ns, e)] = e
			}
		}
	}

	// Keep what is tracked while it lasts, then admit new sockets in key
	// order up to the bound, listeners before connections: the tracked set
	// is stable across polls, so a socket over the bound is never reported
	// as new again and again.
	kept := 0
	var newL, newC []sockKey
	for k := range curL {
		if _, ok := s.listeners[k]; ok {
			kept++
		} else {
			newL = append(newL, k)
		}
	}
	for k := range curC {
		if _, ok := s.conns[k]; ok {
			kept++
		} else {
			newC = append(newC, k)
		}
	}
	slices.SortFunc(newL, compareKeys)
	slices.SortFunc(newC, compareKeys)
	untracked := 0
	room := max(limit-kept, 0)
	if len(newL) > room {
		untracked += len(newL) - room
		newL = newL[:room]
	}
	room -= len(newL)
	if len(newC) > room {
		untracked += len(newC) - room
		newC = newC[:room]
	}

	// Find the processes of the new sockets' inodes, per namespace.
	want := map[uint64]map[uint64]bool{}
	for _, set := range [2]struct {
		keys []sockKey
		m    map[sockKey]*Entry
	}{{newL, curL}, {newC, curC}} {
		for _, k := range set.keys {
			e := set.m[k]
			if e.Inode != 0 && !s.owners.known(e.Inode) {
				if want[k.ns] == nil {
					want[k.ns] = map[uint64]bool{}
				}
				want[k.ns][e.Inode] = true
			}
		}
	}
	walked := s.owners.walked
	for ns, w := range want {
		s.owners.resolve(w, nsPids[ns], 2*limit)
	}

	var evs []event.Event
	detail := ""
	if first {
		detail = DetailInitial
	}
	for _, k := range newL {
		e := curL[k]
		p := s.process(s.owners.lookup(e.Inode))
		s.listeners[k] = &listener{sock: e.Socket, proc: p}
		evs = append(evs, s.event(now, event.NetListen, detail, e.Socket, p))
	}
	for _, k := range newC {
		e := curC[k]
		s.conns[k] = struct{}{}
		d := detail
		if d == "" && e.State == StateSynSent && !e.IsUDP() {
			d = DetailSynSent
		}
		evs = append(evs, s.event(now, event.NetConnect, d, e.Socket, s.process(s.owners.lookup(e.Inode))))
	}
	var gone []sockKey
	for k := range s.listeners {
		if _, ok := curL[k]; !ok {
			gone = append(gone, k)
		}
	}
	slices.SortFunc(gone, compareKeys)
	for _, k := range gone {
		l := s.listeners[k]
		delete(s.listeners, k)
		evs = append(evs, s.event(now, event.NetUnlisten, "", l.sock, l.proc))
	}
	for k := range s.conns {
		if _, ok := curC[k]; !ok {
			delete(s.conns, k)
		}
	}
	s.owners.prune(live)
	unowned := 0
	for _, l := range s.listeners {
		if l.proc == nil {
			unowned++
		}
	}
	s.procs = nil
	s.setStats(func(st *Stats) {
		st.Polls++
		st.LastError = ""
		st.Namespaces = len(tables)
		st.Listeners, st.Connections = len(s.listeners), len(s.conns)
		st.Untracked, st.Unowned = untracked, unowned
		st.FDWalks += s.owners.walked - walked
		st.BadLines += uint64(bad)
	})
	return evs, nil
}

// readAll reads the four tables of every namespace. The agent's own
// namespace is read through /proc/self; any other through its newest
// process whose tables can be read (a process may exit in between).
func (s *Sensor) readAll() ([]nsTable, int, error) {
	root := s.opts.ProcRoot
	nss, err := listNamespaces(root)
	if err != nil {
		return nil, 0, err
	}
	s.nss = nss
	var tables []nsTable
	bad := 0
	for _, id := range nss.ids {
		t := nsTable{pids: nss.pids[id]}
		dirs := make([]string, 0, len(t.pids)+1)
		if id == nss.self {
			dirs = append(dirs, root+"/self/net/")
		} else {
			t.ns = id
		}
		for _, pid := range t.pids {
			dirs = append(dirs, fmt.Sprintf("%s/%d/net/", root, pid))
		}
		read := false
		if es, err := s.readNSDiag(id == nss.self, t.pids); err == nil {
			t.entries, read = es, true
		}
		for _, dir := range dirs {
			if read {
				break
			}
			entries, b, err := s.readTables(dir)
			if err == nil {
				t.entries, bad, read = entries, bad+b, true
				break
			}
		}
		if read {
			tables = append(tables, t)
		} else if id == nss.self {
			return nil, bad, errors.New("netsock: cannot read the socket tables of the agent's namespace")
		}
	}
	return tables, bad, nil
}

// readNSDiag reads a namespace's sockets through sock_diag (diag_linux.go
// says why), entering it through the first of pids whose ns/net opens.
// Only on the real /proc: a fake tree in tests has no kernel behind it.
// Its first failure is logged; /proc/net is read instead.
func (s *Sensor) readNSDiag(self bool, pids []int) ([]Entry, error) {
	if s.opts.ProcRoot != "/proc" {
		return nil, errors.ErrUnsupported
	}
	if self {
		return s.noteDiag(readDiag(0, "/proc/self/net/"))
	}
	var err error = os.ErrNotExist
	for _, pid := range pids {
		var f *os.File
		if f, err = os.Open(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
			continue
		}
		var es []Entry
		es, err = readDiag(int(f.Fd()), fmt.Sprintf("/proc/%d/net/", pid))
		f.Close()
		if err == nil {
			return es, nil
		}
		break // netlink itself failed: another pid will not do better
	}
	return s.noteDiag(nil, err)
}

func (s *Sensor) noteDiag(es []Entry, err error) ([]Entry, error) {
	if err != nil && !errors.Is(err, os.ErrNotExist) && !s.diagLogged {
		s.diagLogged = true
		s.opts.Logger.Info("network sensor: sock_diag unavailable, reading /proc/net tables (costlier)", "err", err)
	}
	return es, err
}

// readTables reads tcp, tcp6, udp and udp6 under dir. A missing table is
// not an error (a kernel without IPv6 has no tcp6); all missing is.
func (s *Sensor) readTables(dir string) ([]Entry, int, error) {
	var all []Entry
	bad, found := 0, 0
	for _, p := range protos() {
		f, err := os.Open(dir + p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, 0, err
		}
		s.buf.Reset()
		_, err = io.Copy(&s.buf, f)
		f.Close()
		if err != nil {
			return nil, 0, err
		}
		found++
		es, b := ParseProcNet(p, s.buf.Bytes())
		all, bad = append(all, es...), bad+b
	}
	if found == 0 {
		return nil, 0, os.ErrNotExist
	}
	return all, bad, nil
}

// process reads pid once per poll (nil for 0, or when it is gone before
// anything could be read).
func (s *Sensor) process(pid int) *event.Process {
	if pid <= 0 {
		return nil
	}
	if p, ok := s.procs[pid]; ok {
		return p
	}
	p, err := s.reader.Read(pid)
	var pp *event.Process
	if err == nil && !(p.Partial && p.Comm == "" && p.Exe == "") {
		if s.opts.Enrich != nil {
			s.opts.Enrich(&p)
		}
		pp = &p
	}
	s.procs[pid] = pp
	return pp
}

// event builds one event; the process is copied so no two events share a
// mutable Process.
func (s *Sensor) event(now time.Time, kind event.Kind, detail string, sock event.Socket, p *event.Process) event.Event {
	ev := event.Event{Time: now, Kind: kind, Source: SourceProcfs, Detail: detail}
	so := sock
	ev.Net = &so
	if kind == event.NetConnect {
		ev.Addr, ev.Port = sock.Remote, sock.RPort
	}
	if p != nil {
		cp := *p
		ev.Proc = &cp
		ev.PID, ev.Program, ev.User = cp.PID, cp.Comm, cp.User
	}
	return ev
}

// listenPorts adds the ports of the listeners tracked from earlier polls to
// ports: traffic from such a port answers a connection the namespace
// accepted, it is never the namespace connecting out.
func (s *Sensor) listenPorts(ports map[portKey]bool) {
	for k := range s.listeners {
		ports[portKey{k.ns, strings.HasPrefix(k.proto, "udp"), k.lport}] = true
	}
}
