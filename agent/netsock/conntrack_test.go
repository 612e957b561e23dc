package netsock

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/conntrack"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/proc"
	"github.com/picket-agent/picket/agent/signal"
)

func flow(proto, src, dst string) conntrack.Flow {
	return conntrack.Flow{Time: t0, Proto: proto, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
		NetNS: 1, Dir: conntrack.Outbound}
}

// TestFlowEvents: conversion, tying through the table and the fd walk,
// the untied case, and deduplication against the poller both ways.
func TestFlowEvents(t *testing.T) {
	f := newFakeProc(t)
	f.process(100, 1, "python3", "/usr/bin/python3.11", 1000, 5001, 5002)
	f.table("self", entry("198.18.0.1", 40001, "203.0.113.9", 80, StateEstablished, 5002))
	f.write("self/net/udp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
		format(Entry{Socket: sock(UDP, "0.0.0.0", 5353, "0.0.0.0", 0, 5001), State: StateClose}))
	s := New(Options{ProcRoot: f.root, Users: proc.NewUsers(filepath.Join(f.root, "passwd"))})
	if _, err := s.Poll(t0); err != nil { // the inventory: port 80's connection is known
		t.Fatal(err)
	}
	// Then python3 connects to 443, too quick for a poll.
	f.table("self",
		entry("198.18.0.1", 40000, "203.0.113.9", 443, StateSynSent, 5001),
		entry("198.18.0.1", 40001, "203.0.113.9", 80, StateEstablished, 5002))
	evs := s.flowEvents([]conntrack.Flow{
		flow("tcp", "198.18.0.1:40000", "203.0.113.9:443"), // tied
		flow("tcp", "198.18.0.1:40001", "203.0.113.9:80"),  // the poller reported it
		flow("tcp", "198.18.0.1:40002", "203.0.113.9:22"),  // already gone
		flow("udp", "198.18.0.1:5353", "198.18.0.2:53"),    // unconnected UDP socket
		flow("icmp", "198.18.0.1:0", "198.18.0.2:0"),       // not a socket protocol
	})
	var got []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %s %s %s:%d>%s:%d ns=%d detail=%q", ev.Kind, ev.Source, ev.Net.Proto, ev.Net.Local, ev.Net.LPort, ev.Net.Remote, ev.Net.RPort, ev.Net.NetNS, ev.Detail)
		if ev.Proc != nil {
			s += fmt.Sprintf(" proc=%s(%d) user=%s", ev.Proc.Comm, ev.Proc.PID, ev.Proc.User)
		}
		got = append(got, s)
	}
	want := []string{
		`net.connect conntrack tcp 198.18.0.1:40000>203.0.113.9:443 ns=0 detail="" proc=python3(100) user=alice`,
		`net.connect conntrack tcp 198.18.0.1:40002>203.0.113.9:22 ns=0 detail="process not known (connection ended before it could be tied)"`,
		`net.connect conntrack udp 198.18.0.1:5353>198.18.0.2:53 ns=0 detail="" proc=python3(100) user=alice`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if evs[0].Addr.String() != "203.0.113.9" || evs[0].Port != 443 || evs[0].PID != 100 || evs[0].Time != t0 || evs[0].Net.Inode != 5001 {
		t.Fatalf("event fields: %+v", evs[0])
	}
	// The next poll does not report the connection conntrack reported.
	evs, err := s.Poll(t0.Add(time.Second))
	if err != nil || len(evs) != 0 {
		t.Fatalf("poll after conntrack: %v %v", summary(evs), err)
	}
	// The same flow again (a retransmitted event, a batch overlap) is not news.
	if evs := s.flowEvents([]conntrack.Flow{flow("tcp", "198.18.0.1:40000", "203.0.113.9:443")}); len(evs) != 0 {
		t.Fatalf("duplicate: %v", evs)
	}
	st := s.Stats().Conntrack
	if st.Tied != 2 || st.Untied != 1 || st.Deduped != 2 || st.Ignored != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestScanUnknownProcess: conntrack events without a process still make an
// outbound scan, attributed to the namespace, never to a guessed process.
func TestScanUnknownProcess(t *testing.T) {
	d := NewDetector(DefaultDetectorOptions())
	var sigs []signal.Signal
	for i := 0; i < 30; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: event.NetConnect, Source: SourceConntrack, Detail: DetailUntied,
			Net: &event.Socket{Proto: TCP, Local: netip.MustParseAddr("198.18.0.1"), LPort: 40000 + i, Remote: netip.MustParseAddr("198.18.0.2"), RPort: 1 + i, NetNS: 7}}
		d.Observe(&ev, func(s signal.Signal) { sigs = append(sigs, s) })
		// The poller's events without a process do not count.
		ev.Source, ev.Net.RPort = SourceProcfs, 1000+i
		d.Observe(&ev, func(s signal.Signal) { sigs = append(sigs, s) })
	}
	if len(sigs) != 1 || sigs[0].Rule != RuleOutboundScan || sigs[0].Subject != "netns:7" ||
		!strings.Contains(sigs[0].Reason, "an unknown process in network namespace 7") || len(sigs[0].Entities) != 1 {
		t.Fatalf("signals: %+v", sigs)
	}
	t.Log(sigs[0].Reason)
}

func TestLiveConntrack(t *testing.T) {
	for _, c := range []struct {
		st       ConntrackStats
		degraded bool
		want     string
	}{
		{ConntrackStats{}, false, "polling only (conntrack off)"},
		{ConntrackStats{Enabled: true, HostUnavailable: "no permission"}, true, "conntrack unavailable: no permission; polling only"},
		{ConntrackStats{Enabled: true, Listeners: 2, Received: 5, Tied: 3, Untied: 2}, false, "in 2 namespaces: 5 received, 3 reported with their process, 2 without"},
		{ConntrackStats{Enabled: true, Listeners: 2, Inactive: []string{"host", "42"}}, false, "not active in 2 namespaces (host, 42)"},
		{ConntrackStats{Enabled: true, Listeners: 1, Overruns: 3, Dropped: 4}, false, "3 kernel buffer overruns and 4 flows dropped"},
		{ConntrackStats{Enabled: true, Listeners: 64, Skipped: 2}, true, "2 namespaces over the limit"},
	} {
		d, s := ctText(c.st, 2*time.Second)
		if d != c.degraded || !strings.Contains(s, c.want) {
			t.Errorf("%+v: %v %q", c.st, d, s)
		}
	}
}

// FuzzFlowEvents: whatever a flow holds, the conversion does not panic,
// and an event keeps the flow's ends and is marked as conntrack's.
func FuzzFlowEvents(f *testing.F) {
	f.Add("tcp", []byte{198, 18, 0, 1}, uint16(40000), []byte{203, 0, 113, 9}, uint16(443), uint64(1))
	f.Add("udp", make([]byte, 16), uint16(0), []byte{127, 0, 0, 1}, uint16(53), uint64(9))
	f.Fuzz(func(t *testing.T, proto string, src []byte, sport uint16, dst []byte, dport uint16, ns uint64) {
		fp := newFakeProc(t)
		fp.table("self", entry("198.18.0.1", 40000, "203.0.113.9", 443, StateSynSent, 5001))
		s := New(Options{ProcRoot: fp.root})
		sa, _ := netip.AddrFromSlice(src)
		da, _ := netip.AddrFromSlice(dst)
		fl := conntrack.Flow{Proto: proto, Src: netip.AddrPortFrom(sa, sport), Dst: netip.AddrPortFrom(da, dport), NetNS: ns}
		for _, ev := range s.flowEvents([]conntrack.Flow{fl, fl}) {
			if ev.Source != SourceConntrack || ev.Kind != event.NetConnect || ev.Net.Remote != da || ev.Net.RPort != int(dport) ||
				ev.Net.LPort != int(sport) || (ev.Proc == nil) == (ev.Detail == "") {
				t.Fatalf("event %+v net %+v", ev, ev.Net)
			}
		}
	})
}

// BenchmarkFlowEvents: NEW flows handled end to end (flow → event, with
// the table read, the socket matched and the process read) per second.
func BenchmarkFlowEvents(b *testing.B) {
	fp := newFakeProc(b)
	var es []Entry
	var inodes []uint64
	for i := 0; i < 200; i++ {
		es = append(es, entry("198.18.0.1", 40000+i, "203.0.113.9", 443, StateEstablished, uint64(5000+i)))
		inodes = append(inodes, uint64(5000+i))
	}
	fp.table("self", es...)
	fp.process(100, 1, "curl", "/usr/bin/curl", 0, inodes...)
	s := New(Options{ProcRoot: fp.root})
	flows := make([]conntrack.Flow, 64)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range flows {
			flows[i] = flow("tcp", fmt.Sprintf("198.18.0.1:%d", 40000+(n+i)%200), "203.0.113.9:443")
		}
		n += len(flows)
		clear(s.conns) // every flow is new
		if evs := s.flowEvents(flows); len(evs) != len(flows) || evs[0].Proc == nil {
			b.Fatalf("%d events", len(evs))
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "flows/s")
}

// TestFlowFromListeningPort: a NEW flow from a tracked TCP listener's port
// is the reply side of an accepted connection (sshd answering the
// brute-forcer it accepted, after the block removed the original entry),
// never a net.connect of the server.
func TestFlowFromListeningPort(t *testing.T) {
	f := newFakeProc(t)
	f.process(300, 1, "sshd", "/usr/sbin/sshd", 0, 7000, 7001)
	f.table("self", entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 7000))
	s := New(Options{ProcRoot: f.root, Users: proc.NewUsers(filepath.Join(f.root, "passwd"))})
	if _, err := s.Poll(t0); err != nil {
		t.Fatal(err)
	}
	f.table("self",
		entry("0.0.0.0", 22, "0.0.0.0", 0, StateListen, 7000),
		entry("198.18.0.1", 22, "198.18.3.3", 43601, StateEstablished, 7001))
	if evs := s.flowEvents([]conntrack.Flow{flow("tcp", "198.18.0.1:22", "198.18.3.3:43601")}); len(evs) != 0 {
		t.Fatalf("sshd's reply to an accepted client reported as outbound: %+v", evs[0].Net)
	}
}
