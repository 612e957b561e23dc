package netsock

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func mkproc(pid int, comm, exe, user string, uid int, args ...string) *event.Process {
	return &event.Process{PID: pid, PPID: 1, Comm: comm, Exe: exe, User: user, UID: uid, Args: args, StartTime: uint64(pid) * 10}
}

func connect(at time.Duration, p *event.Process, proto, remote string, rport int, detail string) *event.Event {
	r := netip.MustParseAddr(remote)
	s := &event.Socket{Proto: proto, Local: netip.MustParseAddr("10.0.0.5"), LPort: 40000, Remote: r, RPort: rport}
	return &event.Event{Time: t0.Add(at), Kind: event.NetConnect, Source: SourceProcfs, Detail: detail, Net: s, Proc: p, Addr: r, Port: rport}
}

func listen(p *event.Process, proto, local string, port int, detail string) *event.Event {
	s := &event.Socket{Proto: proto, Local: netip.MustParseAddr(local), LPort: port}
	return &event.Event{Time: t0, Kind: event.NetListen, Source: SourceProcfs, Detail: detail, Net: s, Proc: p}
}

func exec_(p *event.Process) *event.Event {
	return &event.Event{Time: t0, Kind: event.ProcExec, Proc: p}
}

func observe(d *Detector, evs ...*event.Event) []signal.Signal {
	var out []signal.Signal
	for _, ev := range evs {
		d.Observe(ev, func(s signal.Signal) { out = append(out, s) })
	}
	return out
}

func TestDetectorRules(t *testing.T) {
	maria := mkproc(4242, "mariadbd", "/usr/sbin/mariadbd", "mysql", 106)
	nginx := mkproc(812, "nginx", "/usr/sbin/nginx", "www-data", 33)
	php := mkproc(1201, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "www-data", 33)
	sh := mkproc(4410, "sh", "/usr/bin/dash", "www-data", 33, "sh", "-c", "bash -i")
	sh.Lineage = []event.Ancestor{{PID: 1201, Comm: "php-fpm8.2", Exe: "/usr/sbin/php-fpm8.2"}, {PID: 812, Comm: "nginx"}}
	py := mkproc(5000, "python3", "/usr/bin/python3.11", "alice", 1000, "python3", "-m", "http.server", "9090")
	sshd := mkproc(700, "sshd", "/usr/sbin/sshd", "root", 0)
	nc := mkproc(6000, "nc", "/usr/bin/nc.openbsd", "alice", 1000, "nc", "-lvp", "4444")
	nc.Lineage = []event.Ancestor{{PID: 5999, Comm: "bash"}}
	fake := mkproc(7000, "mariadbd", "/tmp/x/mariadbd", "root", 0)

	cases := []struct {
		name    string
		ev      *event.Event
		rule    string
		stage   signal.Stage
		weight  float64
		ents    string
		reason  string
		subject string
	}{
		{name: "db to public", ev: connect(0, maria, TCP, "203.0.113.9", 443, ""), rule: RuleDBEgress, stage: signal.Exfiltration, weight: 60,
			ents:    "ip:203.0.113.9 process:4242 user:mysql",
			reason:  "database server mariadbd(4242, /usr/sbin/mariadbd) user mysql connected to 203.0.113.9:443/tcp: destination not in private_nets and port 443 not in db_egress_allow_ports",
			subject: "dst:tcp:203.0.113.9:443"},
		{name: "db to benchmarking net counts", ev: connect(0, fake, TCP, "198.18.0.1", 9090, DetailInitial), rule: RuleDBEgress, stage: signal.Exfiltration, weight: 60,
			ents: "ip:198.18.0.1 process:7000", reason: "database server mariadbd(7000, /tmp/x/mariadbd) user root connected to 198.18.0.1:9090/tcp"},
		{name: "db v4-mapped", ev: connect(0, maria, TCP6, "::ffff:203.0.113.9", 5432, ""), rule: RuleDBEgress, ents: "ip:203.0.113.9 process:4242 user:mysql"},
		{name: "db to private", ev: connect(0, maria, TCP, "10.1.2.3", 3306, "")},
		{name: "db to loopback", ev: connect(0, maria, TCP, "127.0.0.1", 3306, "")},
		{name: "db to ula", ev: connect(0, maria, TCP6, "fd00::1", 3306, "")},
		{name: "db to cgnat", ev: connect(0, maria, TCP, "100.64.1.1", 3306, "")},
		{name: "db dns", ev: connect(0, maria, UDP, "8.8.8.8", 53, "")},
		{name: "web to public", ev: connect(0, php, TCP, "203.0.113.7", 4444, ""), rule: RuleWebEgress, stage: signal.Execution, weight: 50,
			ents:   "ip:203.0.113.7 process:1201 user:www-data",
			reason: "web server php-fpm8.2(1201, /usr/sbin/php-fpm8.2) user www-data connected to 203.0.113.7:4444/tcp: destination not in web_egress_nets and port 4444 not in web_egress_ports"},
		{name: "web child reverse shell", ev: connect(0, sh, TCP, "203.0.113.7", 4444, ""), rule: RuleWebEgress,
			reason: "web server php-fpm8.2(1201) (via sh(4410, /usr/bin/dash) user www-data) connected to 203.0.113.7:4444/tcp"},
		{name: "web upstream", ev: connect(0, nginx, TCP, "127.0.0.1", 9000, "")},
		{name: "web dns", ev: connect(0, nginx, UDP, "1.1.1.1", 53, "")},
		{name: "new listener", ev: listen(py, TCP, "0.0.0.0", 9090, ""), rule: RuleNewListener, stage: signal.Persistence, weight: 40,
			ents:    "process:5000 user:alice",
			reason:  `new listener tcp on 0.0.0.0:9090 opened by python3(5000, /usr/bin/python3.11) user alice "python3 -m http.server 9090": port 9090 not in listener_ports and process not in listener_processes`,
			subject: "listen:tcp:0.0.0.0:9090"},
		{name: "listener unknown process in netns", ev: func() *event.Event {
			ev := listen(nil, TCP6, "::", 4444, "")
			ev.Net.NetNS = 4026532300
			return ev
		}(), rule: RuleNewListener, ents: "",
			reason:  "new listener tcp6 on [::]:4444 in network namespace 4026532300 opened by an unknown process",
			subject: "listen:tcp6:[::]:4444@4026532300"},
		{name: "initial listener", ev: listen(py, TCP, "0.0.0.0", 9090, DetailInitial)},
		{name: "whitelisted port", ev: listen(py, TCP, "0.0.0.0", 443, "")},
		{name: "whitelisted process", ev: listen(sshd, TCP, "0.0.0.0", 2222, "")},
		{name: "udp client socket", ev: listen(py, UDP, "0.0.0.0", 45000, "")},
		{name: "udp server", ev: listen(py, UDP, "0.0.0.0", 5353, ""), rule: RuleNewListener},
		{name: "tool", ev: exec_(nc), rule: RuleTool, stage: signal.Recon, weight: 20, ents: "process:6000 user:alice",
			reason: `network tool nc(6000, /usr/bin/nc.openbsd) run by alice: "nc -lvp 4444", parent bash(5999)`, subject: "pid:6000"},
		{name: "not a tool", ev: exec_(py)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := observe(NewDetector(DefaultDetectorOptions()), c.ev)
			if c.rule == "" {
				if len(got) != 0 {
					t.Fatalf("unexpected %s: %s", got[0].Rule, got[0].Reason)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d signals: %+v", len(got), got)
			}
			s := got[0]
			if s.Rule != c.rule {
				t.Fatalf("rule %s, want %s (%s)", s.Rule, c.rule, s.Reason)
			}
			if c.stage != "" && s.Stage != c.stage {
				t.Errorf("stage %s, want %s", s.Stage, c.stage)
			}
			if c.weight != 0 && s.Weight != c.weight {
				t.Errorf("weight %v, want %v", s.Weight, c.weight)
			}
			if c.ents != "" || c.rule == RuleNewListener && c.ev.Proc == nil {
				var es []string
				for _, e := range s.Entities {
					es = append(es, e.String())
				}
				if g := strings.Join(es, " "); g != c.ents {
					t.Errorf("entities %q, want %q", g, c.ents)
				}
			}
			if c.reason != "" && !strings.HasPrefix(s.Reason, c.reason) {
				t.Errorf("reason\n got %s\nwant %s", s.Reason, c.reason)
			}
			if c.subject != "" && s.Subject != c.subject {
				t.Errorf("subject %q, want %q", s.Subject, c.subject)
			}
			if len(s.Evidence) != 1 || s.Time != c.ev.Time {
				t.Errorf("evidence %d, time %v", len(s.Evidence), s.Time)
			}
		})
	}
}

func TestDetectorRuleOff(t *testing.T) {
	o := DefaultDetectorOptions()
	o.DBEgressWeight = 0
	maria := mkproc(4242, "mariadbd", "/usr/sbin/mariadbd", "mysql", 106)
	if got := observe(NewDetector(o), connect(0, maria, TCP, "203.0.113.9", 443, "")); len(got) != 0 {
		t.Fatalf("disabled rule fired: %+v", got)
	}
	o = DefaultDetectorOptions()
	o.PrivateNets = mustPrefixes("203.0.113.0/24")
	if got := observe(NewDetector(o), connect(0, maria, TCP, "203.0.113.9", 443, "")); len(got) != 0 {
		t.Fatalf("configured private net: %+v", got)
	}
}

func TestOutboundScan(t *testing.T) {
	scanner := mkproc(9000, "python3", "/usr/bin/python3.11", "alice", 1000)
	other := mkproc(9001, "curl", "/usr/bin/curl", "bob", 1001)
	var evs []*event.Event
	// 19 ports on one host within the window: quiet; the 20th reports.
	for i := 0; i < 25; i++ {
		evs = append(evs, connect(time.Duration(i)*time.Second, scanner, TCP, "198.18.0.1", 1000+i, DetailSynSent))
		evs = append(evs, connect(time.Duration(i)*time.Second, other, TCP, "203.0.113.1", 443, ""))
	}
	d := NewDetector(DefaultDetectorOptions())
	got := observe(d, evs...)
	if len(got) != 1 {
		t.Fatalf("want one report, got %d: %+v", len(got), got)
	}
	s := got[0]
	want := "python3(9000, /usr/bin/python3.11) user alice connected to 20 distinct ports (threshold scan_ports 20) within 1m0s: hosts 198.18.0.1; ports 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009 and 10 more"
	if s.Rule != RuleOutboundScan || s.Stage != signal.Recon || s.Weight != 40 || s.Reason != want || s.Time != t0.Add(19*time.Second) {
		t.Fatalf("got %s %s %v at %v: %s", s.Rule, s.Stage, s.Weight, s.Time, s.Reason)
	}
	// The same ports spread over more than the window never accumulate.
	d = NewDetector(DefaultDetectorOptions())
	evs = evs[:0]
	for i := 0; i < 40; i++ {
		evs = append(evs, connect(time.Duration(i)*4*time.Second, scanner, TCP, "198.18.0.1", 1000+i, ""))
	}
	if got := observe(d, evs...); len(got) != 0 {
		t.Fatalf("slow connections reported: %s", got[0].Reason)
	}
	// Many hosts, one port; the inventory does not count.
	d = NewDetector(DefaultDetectorOptions())
	evs = evs[:0]
	for i := 0; i < 30; i++ {
		evs = append(evs, connect(0, scanner, TCP, fmt.Sprintf("198.18.1.%d", i+1), 22, DetailInitial))
	}
	for i := 0; i < 20; i++ {
		evs = append(evs, connect(time.Second, scanner, TCP, fmt.Sprintf("198.18.2.%d", i+1), 22, ""))
	}
	got = observe(d, evs...)
	if len(got) != 1 || !strings.Contains(got[0].Reason, "20 distinct hosts (threshold scan_hosts 20)") ||
		!strings.Contains(got[0].Reason, "hosts 198.18.2.1, 198.18.2.2, 198.18.2.3, 198.18.2.4, 198.18.2.5 and 15 more; ports 22") {
		t.Fatalf("hosts scan: %+v", got)
	}
}

func TestScanBounded(t *testing.T) {
	o := DefaultDetectorOptions()
	o.MaxTracked = 100
	d := NewDetector(o)
	for i := 0; i < 10000; i++ {
		p := mkproc(10000+i, "curl", "/usr/bin/curl", "bob", 1001)
		for port := 0; port < 50; port++ {
			d.Observe(connect(time.Duration(i)*time.Millisecond, p, TCP, "203.0.113.1", port, ""), func(signal.Signal) {})
		}
	}
	tracked, evicted := d.Tracked()
	if tracked != 100 || evicted != 9900 {
		t.Fatalf("tracked %d evicted %d", tracked, evicted)
	}
	for _, el := range d.scans {
		st := el.Value.(*scanState)
		if len(st.ports) > 2*o.ScanPorts || len(st.hosts) > 2*o.ScanHosts {
			t.Fatalf("window grew to %d ports %d hosts", len(st.ports), len(st.hosts))
		}
	}
}

func TestLoopbackListenerIsNotNew(t *testing.T) {
	d := NewDetector(DefaultDetectorOptions())
	for _, addr := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		ev := &event.Event{Kind: event.NetListen, Net: &event.Socket{Proto: TCP, Local: netip.MustParseAddr(addr), LPort: 8000},
			Proc: &event.Process{PID: 10, Comm: "python3", Exe: "/usr/bin/python3.11"}}
		d.Observe(ev, func(s signal.Signal) { t.Errorf("%s: %s", addr, s.Reason) })
	}
	fired := false
	ev := &event.Event{Kind: event.NetListen, Net: &event.Socket{Proto: TCP, Local: netip.MustParseAddr("0.0.0.0"), LPort: 8000},
		Proc: &event.Process{PID: 10, Comm: "python3", Exe: "/usr/bin/python3.11"}}
	d.Observe(ev, func(signal.Signal) { fired = true })
	if !fired {
		t.Error("a listener on all addresses was not reported")
	}
}
