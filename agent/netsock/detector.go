package netsock

import (
	"container/list"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/procname"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Network invariant rule ids: a public contract (audit entries,
// suppressions, whitelist proposals).
const (
	RuleDBEgress     = "net.db_egress"
	RuleNewListener  = "net.new_listener"
	RuleWebEgress    = "net.web_egress"
	RuleTool         = "net.tool"
	RuleOutboundScan = "net.outbound_scan"
)

// DetectorOptions configures the network invariants. A rule whose weight
// is 0 is off. Start from DefaultDetectorOptions.
type DetectorOptions struct {
	// DBServers and WebServers are process names with wildcards, matched
	// on comm and on the executable's base name (the schema's
	// processes.db_servers and processes.web_servers).
	DBServers  []string
	WebServers []string
	// PrivateNets are the destinations that are not egress for
	// net.db_egress (nil: DefaultPrivateNets).
	PrivateNets []netip.Prefix

	DBEgressWeight float64
	// DBEgressAllowPorts are destination ports a database server may reach
	// anywhere (DNS: a server resolving its clients' names).
	DBEgressAllowPorts []int

	NewListenerWeight float64
	// ListenerPorts and ListenerProcesses whitelist listeners: one opened
	// on a listed port, or by a listed process, is not reported.
	ListenerPorts     []int
	ListenerProcesses []string
	// ListenerUDPMaxPort: UDP sockets bound above this port are taken for
	// clients (an unconnected UDP socket looks like a server), not
	// listeners.
	ListenerUDPMaxPort int

	WebEgressWeight float64
	// A web server (or a process below one) may connect to WebEgressNets
	// on any port, and to any destination on WebEgressPorts (nil nets:
	// DefaultPrivateNets).
	WebEgressNets  []netip.Prefix
	WebEgressPorts []int

	ToolWeight float64
	Tools      []string

	ScanWeight float64
	// A process connecting to ScanPorts distinct destination ports or
	// ScanHosts distinct hosts within ScanWindow is scanning.
	ScanPorts  int
	ScanHosts  int
	ScanWindow time.Duration
	// ScanIgnore lists processes that legitimately fan out (monitoring
	// scrapers, crawlers).
	ScanIgnore []string
	// MaxTracked bounds the processes the scan rule follows (least
	// recently seen evicted).
	MaxTracked int
}

// DefaultPrivateNets is what is not "out there": loopback, RFC 1918,
// CGNAT, link-local, ULA, "this network", multicast and broadcast.
// 198.18.0.0/15 (benchmarking) is deliberately absent: it is special-
// purpose but not private, and the tests host "remote" peers in it.
func DefaultPrivateNets() []netip.Prefix {
	return mustPrefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8")
}

// DefaultDetectorOptions are the defaults the schema mirrors.
func DefaultDetectorOptions() DetectorOptions {
	return DetectorOptions{
		DBServers:          []string{"mysqld", "mariadbd", "postgres", "redis-server", "mongod"},
		WebServers:         []string{"nginx", "apache2", "httpd", "lighttpd", "caddy", "php-fpm*", "php-cgi*", "gunicorn", "uwsgi"},
		DBEgressWeight:     60,
		DBEgressAllowPorts: []int{53},
		NewListenerWeight:  40,
		ListenerPorts:      []int{22, 80, 443},
		ListenerProcesses: []string{"sshd", "nginx", "apache2", "httpd", "lighttpd", "caddy", "haproxy", "php-fpm*",
			"mysqld", "mariadbd", "postgres", "redis-server", "mongod", "memcached",
			"systemd", "systemd-resolve*", "systemd-network*", "systemd-timesyn*", "chronyd", "ntpd",
			"dnsmasq", "named", "unbound", "dhclient", "dhcpcd", "avahi-daemon", "cupsd", "rpcbind", "rpc.statd",
			"master", "exim4", "sendmail", "dovecot", "containerd", "dockerd", "docker-proxy", "picket"},
		ListenerUDPMaxPort: 32767,
		WebEgressWeight:    50,
		WebEgressPorts:     []int{53},
		ToolWeight:         20,
		Tools:              []string{"nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat", "nmap", "masscan", "zmap"},
		ScanWeight:         40,
		ScanPorts:          20,
		ScanHosts:          20,
		ScanWindow:         60 * time.Second,
		MaxTracked:         4096,
	}
}

// Detector raises the network invariants from the network sensor's
// events and from process execs. It is not safe for concurrent use (the
// pipeline drives detectors from one goroutine); its only state is the
// scan rule's per-process windows, bounded by MaxTracked. Time is the
// events' own, so replays reproduce it.
type Detector struct {
	o       DetectorOptions
	db, web names
	lproc   names
	tools   names
	scanOK  names
	lports  map[int]bool
	dbPorts map[int]bool
	wPorts  map[int]bool
	scans   map[procKey]*list.Element
	lru     *list.List // of *scanState, most recent at the front
	evicted int
}

// NewDetector builds a Detector.
func NewDetector(o DetectorOptions) *Detector {
	if o.PrivateNets == nil {
		o.PrivateNets = DefaultPrivateNets()
	}
	if o.WebEgressNets == nil {
		o.WebEgressNets = DefaultPrivateNets()
	}
	if o.ScanWindow <= 0 {
		o.ScanWindow = 60 * time.Second
	}
	if o.ScanPorts <= 0 {
		o.ScanPorts = 20
	}
	if o.ScanHosts <= 0 {
		o.ScanHosts = 20
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = 4096
	}
	return &Detector{o: o, db: o.DBServers, web: o.WebServers, lproc: o.ListenerProcesses, tools: o.Tools,
		scanOK: o.ScanIgnore, lports: set(o.ListenerPorts), dbPorts: set(o.DBEgressAllowPorts),
		wPorts: set(o.WebEgressPorts), scans: map[procKey]*list.Element{}, lru: list.New()}
}

// Tracked returns how many processes the scan rule follows and how many
// it evicted, for status and benchmarks.
func (d *Detector) Tracked() (tracked, evicted int) { return d.lru.Len(), d.evicted }

// Observe checks one event.
func (d *Detector) Observe(ev *event.Event, emit func(signal.Signal)) {
	switch ev.Kind {
	case event.ProcExec:
		d.tool(ev, emit)
	case event.ProcExit:
		if ev.Proc != nil {
			d.Forget(ev.Proc.PID, ev.Proc.StartTime)
		}
	case event.NetListen:
		d.listener(ev, emit)
	case event.NetConnect:
		if ev.Net == nil {
			return
		}
		d.egress(ev, emit)
		d.scan(ev, emit)
	}
}

func (d *Detector) tool(ev *event.Event, emit func(signal.Signal)) {
	p := ev.Proc
	if d.o.ToolWeight <= 0 || p == nil || !d.tools.Match(p.Comm, p.Exe) {
		return
	}
	ents := []signal.Entity{{Kind: signal.Process, Value: strconv.Itoa(p.PID)}}
	if p.PPID > 1 {
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: strconv.Itoa(p.PPID)})
	}
	reason := fmt.Sprintf("network tool %s run by %s", procName(p), userName(p))
	if cmd := cmdline(p.Args); cmd != "" {
		reason += ": " + strconv.Quote(cmd)
	}
	if len(p.Lineage) > 0 {
		reason += ", parent " + ancestorName(p.Lineage[0])
	}
	d.emit(ev, emit, RuleTool, signal.Recon, d.o.ToolWeight, ents, reason, "pid:"+strconv.Itoa(p.PID))
}

// listener: net.new_listener. Stage persistence: a listener opened after
// start by an unlisted process is a way back in that outlives the
// attacker's session (bind shell, ad-hoc file server); the process that
// opened it already raised its own execution signals, so persistence adds
// the stage that escalates the incident.
func (d *Detector) listener(ev *event.Event, emit func(signal.Signal)) {
	s, p := ev.Net, ev.Proc
	if d.o.NewListenerWeight <= 0 || s == nil || ev.Detail == DetailInitial {
		return
	}
	udp := s.Proto == UDP || s.Proto == UDP6
	if udp && d.o.ListenerUDPMaxPort > 0 && s.LPort > d.o.ListenerUDPMaxPort {
		return
	}
	if d.lports[s.LPort] || (p != nil && d.lproc.Match(p.Comm, p.Exe)) {
		return
	}
	// A listener bound to loopback is not reachable from outside its
	// network namespace: local tooling (a dev server, a metrics endpoint)
	// does it all day, and it is no way back in.
	if s.Local.IsValid() && s.Local.Unmap().IsLoopback() {
		return
	}
	var ents []signal.Entity
	who := "an unknown process"
	if p != nil {
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: strconv.Itoa(p.PID)})
		who = procName(p) + " user " + userName(p)
		if cmd := cmdline(p.Args); cmd != "" {
			who += " " + strconv.Quote(cmd)
		}
	}
	reason := fmt.Sprintf("new listener %s on %s%s opened by %s: port %d not in listener_ports and process not in listener_processes",
		s.Proto, addrPort(s.Local, s.LPort), nsText(s), who, s.LPort)
	d.emit(ev, emit, RuleNewListener, signal.Persistence, d.o.NewListenerWeight, ents, reason,
		"listen:"+s.Proto+":"+addrPort(s.Local, s.LPort)+nsSubject(s))
}

// egress: net.db_egress and net.web_egress. A database server talks to
// its clients, replicas and backups, all private; one connecting out to
// the internet is sending data away (exfiltration). A web server's own
// outbound connections go to its upstreams; one that reaches an
// unexpected destination runs code it should not (a webshell's reverse
// shell or payload download): execution. Both look at the process and
// its ancestors (when the process table filled the lineage), so `curl`
// spawned by postgres's COPY TO PROGRAM counts as the database's.
func (d *Detector) egress(ev *event.Event, emit func(signal.Signal)) {
	s, p := ev.Net, ev.Proc
	if p == nil || !s.Remote.IsValid() {
		return
	}
	remote := s.Remote.Unmap()
	if d.o.DBEgressWeight > 0 && !d.dbPorts[s.RPort] && !inPrefixes(d.o.PrivateNets, remote) {
		if server, ok := matchSelfOrAncestor(d.db, p); ok {
			reason := fmt.Sprintf("database server %s connected to %s/%s%s: destination not in private_nets and port %d not in db_egress_allow_ports",
				server, addrPort(remote, s.RPort), s.Proto, nsText(s), s.RPort)
			d.emit(ev, emit, RuleDBEgress, signal.Exfiltration, d.o.DBEgressWeight, connEntities(remote, p), reason,
				"dst:"+s.Proto+":"+addrPort(remote, s.RPort))
		}
	}
	if d.o.WebEgressWeight > 0 && !d.wPorts[s.RPort] && !inPrefixes(d.o.WebEgressNets, remote) {
		if server, ok := matchSelfOrAncestor(d.web, p); ok {
			reason := fmt.Sprintf("web server %s connected to %s/%s%s: destination not in web_egress_nets and port %d not in web_egress_ports",
				server, addrPort(remote, s.RPort), s.Proto, nsText(s), s.RPort)
			d.emit(ev, emit, RuleWebEgress, signal.Execution, d.o.WebEgressWeight, connEntities(remote, p), reason,
				"dst:"+s.Proto+":"+addrPort(remote, s.RPort))
		}
	}
}

// matchSelfOrAncestor names the process when it matches n, or "ancestor
// → process" when an ancestor does.
func matchSelfOrAncestor(n names, p *event.Process) (string, bool) {
	if n.Match(p.Comm, p.Exe) {
		return fmt.Sprintf("%s user %s", procName(p), userName(p)), true
	}
	for _, a := range p.Lineage {
		if n.Match(a.Comm, a.Exe) {
			return fmt.Sprintf("%s (via %s user %s)", ancestorName(a), procName(p), userName(p)), true
		}
	}
	return "", false
}

func connEntities(remote netip.Addr, p *event.Process) []signal.Entity {
	return []signal.Entity{{Kind: signal.IP, Value: remote.String()}, {Kind: signal.Process, Value: strconv.Itoa(p.PID)}}
}

func (d *Detector) emit(ev *event.Event, emit func(signal.Signal), rule string, stage signal.Stage, w float64, ents []signal.Entity, reason, subject string) {
	// The user joins the incident with that user's logins; root is
	// everyone's, so keyed on it every root process would share one.
	if p := ev.Proc; p != nil {
		if p.User != "" && p.UID != 0 {
			ents = append(ents, signal.Entity{Kind: signal.User, Value: p.User})
		}
		if c := p.Container; c != nil {
			ents = append(ents, signal.Entity{Kind: signal.Container, Value: c.ID})
		}
	}
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: stage, Weight: w, Entities: ents, Reason: reason,
		Evidence: []event.Event{*ev}, Subject: subject})
}

// names is the shared process-name matcher.
type names = procname.Names

func set(ports []int) map[int]bool {
	m := make(map[int]bool, len(ports))
	for _, p := range ports {
		m[p] = true
	}
	return m
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// procName is "comm(pid, exe)": the executable is what tells a real
// server from a binary copied or renamed to look like one.
func procName(p *event.Process) string {
	name := p.Comm
	if name == "" {
		name = path.Base(p.Exe)
	}
	if p.Exe != "" {
		return fmt.Sprintf("%s(%d, %s)", name, p.PID, p.Exe)
	}
	return fmt.Sprintf("%s(%d)", name, p.PID)
}

func ancestorName(a event.Ancestor) string {
	name := a.Comm
	if name == "" {
		name = path.Base(a.Exe)
	}
	return fmt.Sprintf("%s(%d)", name, a.PID)
}

func userName(p *event.Process) string {
	if p.User != "" {
		return p.User
	}
	return "uid " + strconv.Itoa(p.UID)
}

const maxCmdline = 160

func cmdline(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > maxCmdline {
		s = s[:maxCmdline] + "…"
	}
	return s
}

func addrPort(a netip.Addr, port int) string {
	if !a.IsValid() {
		return "*:" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func nsText(s *event.Socket) string {
	if s.NetNS == 0 {
		return ""
	}
	return " in network namespace " + strconv.FormatUint(s.NetNS, 10)
}

func nsSubject(s *event.Socket) string {
	if s.NetNS == 0 {
		return ""
	}
	return "@" + strconv.FormatUint(s.NetNS, 10)
}

// sortedInts renders up to n ints in ascending order and how many more.
func sortedInts(xs []int, n int) string {
	slices.Sort(xs)
	var b strings.Builder
	for i, x := range xs {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(xs)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
	}
	return b.String()
}
