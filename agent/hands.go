package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/account"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/actions/executors"
	"github.com/picket-agent/picket/actions/firewall"
	"github.com/picket-agent/picket/actions/health"
	"github.com/picket-agent/picket/actions/isolate"
	"github.com/picket-agent/picket/actions/sshd"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// HandsConfig says where the action executors act; zero fields are the
// real host's paths. Tests point them at private copies and namespaces.
type HandsConfig struct {
	Store    *state.Store
	StateDir string
	Logger   *slog.Logger
	// Remote is the config repository's URL: never blocked, always
	// allowed out during containment, and a health check.
	Remote string
	// Table is the nftables table (family inet), "picket" when empty.
	Table string
	// NetNS, when not 0, is a network namespace fd the firewall works in.
	NetNS    int
	Accounts account.Files
	Proc     string
	Nologin  string
	// ResolvConf lists the resolvers containment keeps reachable.
	ResolvConf string
	// DockerSocket is the Docker Engine API socket
	// ("/var/run/docker.sock"); container isolation is left out when it
	// does not exist.
	DockerSocket string
	// NoFirewall leaves the network actions out (no nftables here).
	NoFirewall bool
	Now        func() time.Time
}

// Hands is the action engine with its executors, built for a policy.
type Hands struct {
	Engine   *actions.Engine
	Firewall *firewall.Firewall // nil when unavailable
	cfg      HandsConfig
	log      *slog.Logger

	mu     sync.Mutex
	policy *schema.Policy
	remote []netip.Prefix
}

// NewHands builds the executors this host supports and the engine.
// Missing capabilities (no nftables, no root) leave actions out, logged,
// never fatal: those actions are journaled as "not available".
func NewHands(cfg HandsConfig) (*Hands, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Table == "" {
		cfg.Table = "picket"
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Hands{cfg: cfg, log: cfg.Logger.With("subsystem", "actions")}
	h.remote = remotePrefixes(cfg.Remote)
	if !cfg.NoFirewall {
		fw, err := firewall.New(firewall.Options{Table: cfg.Table, NetNS: cfg.NetNS, Logger: cfg.Logger})
		if err != nil {
			h.log.Warn("firewall actions unavailable", "err", err)
		} else {
			h.Firewall = fw
		}
	}
	if cfg.DockerSocket == "" {
		cfg.DockerSocket = "/var/run/docker.sock"
	}
	reg := &emergency.Registry{Dir: emergency.DirIn(cfg.StateDir)}
	var iso executors.Isolator
	if fi, err := os.Stat(cfg.DockerSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		iso = isolate.NewClient(cfg.DockerSocket, 20*time.Second)
	}
	host := executors.Host{Isolator: iso, IsolateHow: h.isolateHow, Firewall: h.Firewall, Accounts: cfg.Accounts, Proc: cfg.Proc, Nologin: cfg.Nologin, Registry: reg,
		Admin: h.admin, Allow: h.allow, SSHPorts: h.sshPorts, ProtectPIDs: h.sshdPIDs, ProtectUsers: h.protectUsers, Now: cfg.Now}
	stateDir := cfg.StateDir
	stopped := func() (string, bool) {
		s, ok, err := emergency.ReadStop(stateDir)
		if err != nil {
			h.log.Warn("emergency stop file", "err", err)
		}
		return s.String(), ok
	}
	e, err := actions.New(actions.Config{Store: cfg.Store, Executors: executors.New(host), Health: h.health, Logger: cfg.Logger, Now: cfg.Now, Stopped: stopped})
	if err != nil {
		return nil, err
	}
	h.Engine = e
	return h, nil
}

// SetPolicy gives the engine the policy and a fresh never-touch set.
func (h *Hands) SetPolicy(p *schema.Policy) {
	h.mu.Lock()
	h.policy = p
	h.mu.Unlock()
	protected := append([]netip.Prefix(nil), h.remote...)
	protected = append(protected, localPrefixes()...)
	// The admin whitelist is enforced in the kernel too (accepted before
	// any picket drop): keep it current while the table exists.
	if h.Firewall != nil {
		if ok, err := h.Firewall.Present(); err == nil && ok {
			if err := h.Firewall.SetAdmin(h.admin()); err != nil {
				h.log.Warn("update the admin whitelist in nftables", "err", err)
			}
		}
	}
	g := &actions.Guard{Admin: h.admin(), Protected: protected, Users: h.protectUsers(), PIDs: h.sshdPIDs(), Proc: h.cfg.Proc}
	h.Engine.SetPolicy(p, g)
}

// Run runs the engine and, when the firewall is there, watches its table
// so a flush is repaired at once rather than at the next reconcile.
func (h *Hands) Run(ctx context.Context) error {
	if h.Firewall != nil {
		go func() {
			if err := h.Firewall.Watch(ctx, h.Engine.Nudge); err != nil && ctx.Err() == nil {
				h.log.Warn("nftables watch ended; flushes are repaired at the reconcile period", "err", err)
			}
		}()
	}
	return h.Engine.Run(ctx)
}

// Close releases the firewall's netlink connection.
func (h *Hands) Close() error {
	if h.Firewall != nil {
		return h.Firewall.Close()
	}
	return nil
}

func (h *Hands) current() *schema.Policy {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.policy
}

func (h *Hands) admin() []netip.Prefix {
	p := h.current()
	if p == nil {
		return nil
	}
	var out []netip.Prefix
	for _, e := range p.Whitelist.AdminIPs {
		if pr, err := whitelist.ParsePrefix(e.CIDR); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

func (h *Hands) isolateHow() string {
	if p := h.current(); p != nil {
		return p.Actions.Isolate
	}
	return ""
}

func (h *Hands) protectUsers() []string {
	out := []string{"root"}
	if p := h.current(); p != nil {
		for _, u := range p.Whitelist.Users {
			out = append(out, u.Name)
		}
	}
	return out
}

// allow is what containment lets out: the resolvers, the config remote
// and the policy's containment.allow.
func (h *Hands) allow() []netip.Prefix {
	out := append([]netip.Prefix(nil), h.remote...)
	out = append(out, resolvers(h.cfg.ResolvConf)...)
	if p := h.current(); p != nil {
		for _, a := range p.Actions.Containment.Allow {
			if pr, err := whitelist.ParsePrefix(a); err == nil {
				out = append(out, pr)
			}
		}
	}
	return out
}

func (h *Hands) sshPorts() []uint16 {
	ls, err := sshd.Listeners(h.cfg.Proc)
	if ports := sshd.Ports(ls); err == nil && len(ports) > 0 {
		return ports
	}
	return []uint16{22}
}

func (h *Hands) sshdPIDs() []int {
	ls, _ := sshd.Listeners(h.cfg.Proc)
	var out []int
	for _, l := range ls {
		out = append(out, l.PID)
	}
	return out
}

func (h *Hands) health(ctx context.Context) []health.Result {
	p := h.current()
	if p == nil {
		return nil
	}
	c := health.Checker{Checks: p.Actions.Health.Checks, Env: health.Env{
		SSHAddrs: func() []string {
			ls, _ := sshd.Listeners(h.cfg.Proc)
			var out []string
			for _, l := range ls {
				out = append(out, health.DialAddr(net.IP(l.Addr.Addr().AsSlice()), int(l.Addr.Port())))
			}
			return out
		},
	}}
	if h.cfg.Remote != "" {
		c.Env.GitRemote = func(ctx context.Context) error { return remoteReachable(ctx, h.cfg.Remote) }
	}
	return c.Run(ctx)
}

// remoteHost returns the host and port of a git remote URL ("" for a local
// path or file://).
func remoteHost(raw string) (host, port string) {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		port = u.Port()
		if port == "" {
			port = map[string]string{"ssh": "22", "https": "443", "http": "80", "git": "9418"}[u.Scheme]
		}
		return u.Hostname(), port
	}
	// scp-like "git@host:path".
	if at := strings.Index(raw, "@"); at >= 0 {
		if colon := strings.Index(raw[at:], ":"); colon > 0 {
			return raw[at+1 : at+colon], "22"
		}
	}
	return "", ""
}

func remotePrefixes(raw string) []netip.Prefix {
	host, _ := remoteHost(raw)
	if host == "" {
		return nil
	}
	var out []netip.Prefix
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Prefix{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	addrs, _ := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	for _, a := range addrs {
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func remoteReachable(ctx context.Context, raw string) error {
	host, port := remoteHost(raw)
	if host == "" {
		path := strings.TrimPrefix(raw, "file://")
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("config remote %s: %w", raw, err)
		}
		return nil
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("config remote %s: %w", raw, err)
	}
	return c.Close()
}

func resolvers(path string) []netip.Prefix {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(strings.Split(fs[1], "%")[0]); err == nil && !a.IsLoopback() {
				a = a.Unmap()
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	return out
}

// localPrefixes are the host's own addresses: blocking one would cut the
// host off from itself.
func localPrefixes() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.Unmap().IsLoopback() {
				ip = ip.Unmap()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return out
}

// errNoHands is returned by commands that need the executors when none
// could be built.
var errNoHands = errors.New("agent: no action executors")
