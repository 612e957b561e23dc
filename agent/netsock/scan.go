package netsock

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// procKey identifies a process across pid reuse.
type procKey struct {
	pid   int
	start uint64
}

// scanState is one process's recent destinations: distinct ports and
// hosts with the last time each was seen, pruned to the window. Each map
// holds at most twice its threshold: past the threshold the count is
// already enough to report, so a real scan of 65535 ports costs no more.
type scanState struct {
	key      procKey
	ports    map[int]time.Time
	hosts    map[netip.Addr]time.Time
	reported bool
}

// scan: net.outbound_scan, stage recon. Connections the first poll found
// (Detail initial) are not a burst and do not count. Conntrack events whose
// process is not known (a refused connect is gone before it can be tied; a
// raw-socket SYN scan never had a socket) are counted per network
// namespace, as "an unknown process": the scan is real, its author is
// never guessed.
func (d *Detector) scan(ev *event.Event, emit func(signal.Signal)) {
	s, p := ev.Net, ev.Proc
	if d.o.ScanWeight <= 0 || ev.Detail == DetailInitial || !s.Remote.IsValid() {
		return
	}
	var key procKey
	switch {
	case p != nil:
		if d.scanOK.Match(p.Comm, p.Exe) {
			return
		}
		key = procKey{p.PID, p.StartTime}
	case ev.Source == SourceConntrack:
		key = procKey{-1, s.NetNS} // pid -1: no process has it
	default:
		return
	}
	st := d.state(key)
	now := ev.Time
	cut := now.Add(-d.o.ScanWindow)
	for k, t := range st.ports {
		if t.Before(cut) {
			delete(st.ports, k)
		}
	}
	for k, t := range st.hosts {
		if t.Before(cut) {
			delete(st.hosts, k)
		}
	}
	remote := s.Remote.Unmap()
	if _, ok := st.ports[s.RPort]; ok || len(st.ports) < 2*d.o.ScanPorts {
		st.ports[s.RPort] = now
	}
	if _, ok := st.hosts[remote]; ok || len(st.hosts) < 2*d.o.ScanHosts {
		st.hosts[remote] = now
	}
	over := len(st.ports) >= d.o.ScanPorts || len(st.hosts) >= d.o.ScanHosts
	if !over {
		st.reported = false // the episode ended: a later burst is a new one
		return
	}
	if st.reported {
		return
	}
	st.reported = true
	ports := make([]int, 0, len(st.ports))
	for k := range st.ports {
		ports = append(ports, k)
	}
	hosts := make([]netip.Addr, 0, len(st.hosts))
	for k := range st.hosts {
		hosts = append(hosts, k)
	}
	slices.SortFunc(hosts, netip.Addr.Compare)
	var what string
	if len(st.ports) >= d.o.ScanPorts {
		what = fmt.Sprintf("%d distinct ports (threshold scan_ports %d)", len(ports), d.o.ScanPorts)
	} else {
		what = fmt.Sprintf("%d distinct hosts (threshold scan_hosts %d)", len(hosts), d.o.ScanHosts)
	}
	if p == nil {
		where := "the host's network namespace"
		if s.NetNS != 0 {
			where = "network namespace " + strconv.FormatUint(s.NetNS, 10)
		}
		reason := fmt.Sprintf("an unknown process in %s (conntrack: the connections ended before they could be tied) connected to %s within %s: hosts %s; ports %s",
			where, what, d.o.ScanWindow, addrList(hosts, 5), sortedInts(ports, 10))
		var ents []signal.Entity
		if len(hosts) == 1 {
			ents = append(ents, signal.Entity{Kind: signal.IP, Value: hosts[0].String()})
		}
		d.emit(ev, emit, RuleOutboundScan, signal.Recon, d.o.ScanWeight, ents, reason, "netns:"+strconv.FormatUint(s.NetNS, 10))
		return
	}
	reason := fmt.Sprintf("%s user %s connected to %s within %s: hosts %s; ports %s",
		procName(p), userName(p), what, d.o.ScanWindow, addrList(hosts, 5), sortedInts(ports, 10))
	ents := []signal.Entity{{Kind: signal.Process, Value: strconv.Itoa(p.PID)}}
	if len(hosts) == 1 {
		ents = append(ents, signal.Entity{Kind: signal.IP, Value: hosts[0].String()})
	}
	d.emit(ev, emit, RuleOutboundScan, signal.Recon, d.o.ScanWeight, ents, reason, "pid:"+strconv.Itoa(p.PID))
}

// state returns the process's window, evicting the least recently seen
// process when MaxTracked are followed.
func (d *Detector) state(k procKey) *scanState {
	if el, ok := d.scans[k]; ok {
		d.lru.MoveToFront(el)
		return el.Value.(*scanState)
	}
	if d.lru.Len() >= d.o.MaxTracked {
		old := d.lru.Back()
		d.lru.Remove(old)
		delete(d.scans, old.Value.(*scanState).key)
		d.evicted++
	}
	st := &scanState{key: k, ports: map[int]time.Time{}, hosts: map[netip.Addr]time.Time{}}
	d.scans[k] = d.lru.PushFront(st)
	return st
}

// Forget drops the scan window of an exited process (the pipeline may
// call it on ProcExit; eviction bounds memory either way).
func (d *Detector) Forget(pid int, start uint64) {
	k := procKey{pid, start}
	if el, ok := d.scans[k]; ok {
		d.lru.Remove(el)
		delete(d.scans, k)
	}
}

func addrList(as []netip.Addr, n int) string {
	var b strings.Builder
	for i, a := range as {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(as)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}
