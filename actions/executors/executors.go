// Package executors adapts picket's hands — the nftables firewall, the
// process-tree killer, account expiry, /run/nologin and Docker isolation —
// to the action engine's Executor interface, and records in the emergency
// registry what the standalone emergency-stop script needs. The agent and
// the CLI (rollback, emergency-stop) build the same set with New.
package executors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/account"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/actions/firewall"
	"github.com/picket-agent/picket/actions/nologin"
	"github.com/picket-agent/picket/actions/proctree"
	"github.com/picket-agent/picket/agent/whitelist"
)

// NologinMessage is what a user refused by a paused SSH sees.
const NologinMessage = "Logins are paused by picket (security incident response); they resume automatically.\n"

// Host is what the executors act on, passed in so tests use private copies.
type Host struct {
	// Firewall is nil when nftables is unavailable: the network actions
	// are then missing from the set (journaled as "not available").
	Firewall *firewall.Firewall
	Accounts account.Files
	Proc     string // "/proc"
	Nologin  string // "/run/nologin"
	Registry *emergency.Registry
	// Isolator is nil when no Docker daemon is reachable.
	Isolator Isolator
	// IsolateHow returns "disconnect" (default) or "pause".
	IsolateHow func() string
	// Admin returns the admin whitelist (SSH pause and containment keep
	// it reachable; without it they do not pause SSH at all).
	Admin func() []netip.Prefix
	// Allow returns what containment still lets out (resolvers, the git
	// remote, configured destinations).
	Allow func() []netip.Prefix
	// SSHPorts returns sshd's listening ports.
	SSHPorts func() []uint16
	// ProtectPIDs returns processes never killed (sshd's listener).
	ProtectPIDs func() []int
	// ProtectUsers are accounts never disabled.
	ProtectUsers func() []string
	Now          func() time.Time
}

// New returns the executors this host supports, by action name.
func New(h Host) map[string]actions.Executor {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Proc == "" {
		h.Proc = "/proc"
	}
	if h.Nologin == "" {
		h.Nologin = "/run/nologin"
	}
	if h.Accounts.Passwd == "" {
		h.Accounts = account.Default()
	}
	out := map[string]actions.Executor{
		actions.KillTree:    &killTree{h: &h},
		actions.DisableUser: &disableUser{h: &h},
		actions.EndSessions: &endSessions{h: &h},
	}
	if h.Firewall != nil {
		out[actions.BlockSource] = &fwPrefix{h: &h, kind: actions.BlockSource}
		out[actions.BlockDestination] = &fwPrefix{h: &h, kind: actions.BlockDestination}
		out[actions.RateLimit] = &fwPrefix{h: &h, kind: actions.RateLimit}
		out[actions.PauseSSH] = &pauseSSH{h: &h}
		out[actions.Containment] = &containment{h: &h}
	}
	if h.Isolator != nil {
		out[actions.IsolateContainer] = &isolateContainer{h: &h}
	}
	return out
}

// ttl is what is left of a's time, for kernel-side timeouts.
func (h *Host) ttl(a *actions.Action) (time.Duration, error) {
	d := a.Expires.Sub(h.Now()).Round(time.Second)
	if d < time.Second {
		return 0, fmt.Errorf("executors: action %d has no time left (expires %s)", a.ID, a.Expires.Format(time.RFC3339))
	}
	return d, nil
}

// fwPrefix blocks, outbound-blocks or rate-limits one address or prefix.
type fwPrefix struct {
	h    *Host
	kind string
}

func (x *fwPrefix) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}

func (x *fwPrefix) Apply(_ context.Context, a *actions.Action) (string, error) {
	p, err := whitelist.ParsePrefix(a.Target)
	if err != nil {
		return "", err
	}
	ttl, err := x.h.ttl(a)
	if err != nil {
		return "", err
	}
	fw := x.h.Firewall
	if err := fw.Ensure(); err != nil {
		return "", err
	}
	switch x.kind {
	case actions.BlockSource:
		err = fw.Block(p, ttl)
	case actions.BlockDestination:
		err = fw.BlockOutbound(p, ttl)
	default:
		err = fw.RateLimit(p, ttl)
	}
	if err != nil {
		return "", err
	}
	verb := map[string]string{actions.BlockSource: "inbound from", actions.BlockDestination: "outbound to", actions.RateLimit: "new connections rate-limited from"}[x.kind]
	return fmt.Sprintf("nftables: %s %s dropped (kernel timeout %s)", verb, p, ttl), nil
}

func (x *fwPrefix) Revert(_ context.Context, a *actions.Action) error {
	p, err := whitelist.ParsePrefix(a.Target)
	if err != nil {
		return nil // nothing was ever applied for an unparseable target
	}
	fw := x.h.Firewall
	switch x.kind {
	case actions.BlockSource:
		return fw.Unblock(p)
	case actions.BlockDestination:
		return fw.UnblockOutbound(p)
	default:
		return fw.Unlimit(p)
	}
}

func (x *fwPrefix) entries(st firewall.State) []firewall.Entry {
	switch x.kind {
	case actions.BlockSource:
		return st.Blocked
	case actions.BlockDestination:
		return st.Outbound
	default:
		return st.RateLimited
	}
}

func (x *fwPrefix) InForce(_ context.Context, a *actions.Action) (bool, error) {
	p, err := whitelist.ParsePrefix(a.Target)
	if err != nil {
		return true, nil
	}
	st, err := x.h.Firewall.List()
	if err != nil {
		return false, err
	}
	if !st.Present {
		return false, nil
	}
	return slices.ContainsFunc(x.entries(st), func(e firewall.Entry) bool { return e.Prefix == p }), nil
}

// Sweep removes set elements no live action accounts for (a journal write
// lost in a crash after the kernel took the element).
func (x *fwPrefix) Sweep(_ context.Context, live []actions.Action) ([]string, error) {
	st, err := x.h.Firewall.List()
	if err != nil || !st.Present {
		return nil, err
	}
	want := map[netip.Prefix]bool{}
	for _, a := range live {
		if p, err := whitelist.ParsePrefix(a.Target); err == nil {
			want[p] = true
		}
	}
	var removed []string
	var errs []error
	for _, e := range x.entries(st) {
		if want[e.Prefix] {
			continue
		}
		a := actions.Action{Target: e.Prefix.String()}
		if err := x.Revert(context.Background(), &a); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Prefix.String())
	}
	return removed, errors.Join(errs...)
}

// pauseSSH drops new connections to sshd's ports except from the admin
// whitelist, and writes /run/nologin (which stops non-root users only).
type pauseSSH struct{ h *Host }

type pauseUndo struct {
	Nologin nologin.Undo `json:"nologin"`
	Ports   []uint16     `json:"ports"`
	// Firewall is false when the firewall part was skipped (no admin
	// whitelist: pausing would lock the operator out).
	Firewall bool `json:"firewall"`
}

func (x *pauseSSH) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	u := pauseUndo{Ports: x.h.SSHPorts(), Firewall: len(x.h.Admin()) > 0}
	var err error
	if u.Nologin, err = nologin.Snapshot(x.h.Nologin); err != nil {
		return nil, err
	}
	// Recorded before anything changes: the emergency script restores it.
	if err := x.h.Registry.SetNologin(u.Nologin.Existed, u.Nologin.Prev); err != nil {
		return nil, err
	}
	return json.Marshal(u)
}

func (x *pauseSSH) undo(a *actions.Action) (pauseUndo, error) {
	var u pauseUndo
	if err := json.Unmarshal(a.Undo, &u); err != nil {
		return u, fmt.Errorf("executors: pause-ssh %d: snapshot: %w", a.ID, err)
	}
	return u, nil
}

func (x *pauseSSH) Apply(_ context.Context, a *actions.Action) (string, error) {
	u, err := x.undo(a)
	if err != nil {
		return "", err
	}
	ttl, err := x.h.ttl(a)
	if err != nil {
		return "", err
	}
	var notes []string
	if u.Firewall && len(u.Ports) > 0 {
		fw := x.h.Firewall
		if err := fw.Ensure(); err != nil {
			return "", err
		}
		if err := fw.SetAdmin(x.h.Admin()); err != nil {
			return "", err
		}
		if err := fw.PauseSSH(u.Ports, ttl); err != nil {
			return "", err
		}
		notes = append(notes, fmt.Sprintf("new connections to port(s) %s dropped except from the admin whitelist", ports(u.Ports)))
	} else {
		notes = append(notes, "new SSH connections NOT dropped: no admin_ips configured, it would lock the operator out")
	}
	if _, err := nologin.Set(x.h.Nologin, NologinMessage); err != nil {
		return "", err
	}
	notes = append(notes, x.h.Nologin+" written (non-root logins refused)")
	return strings.Join(notes, "; "), nil
}

func (x *pauseSSH) Revert(_ context.Context, a *actions.Action) error {
	u, err := x.undo(a)
	if err != nil {
		return err
	}
	var errs []error
	if u.Firewall && len(u.Ports) > 0 {
		errs = append(errs, x.h.Firewall.ResumeSSH(u.Ports))
	}
	errs = append(errs, nologin.Restore(x.h.Nologin, u.Nologin))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return x.h.Registry.ClearNologin()
}

func (x *pauseSSH) InForce(_ context.Context, a *actions.Action) (bool, error) {
	u, err := x.undo(a)
	if err != nil {
		return true, nil
	}
	if _, err := os.Stat(x.h.Nologin); err != nil {
		return false, nil
	}
	if !u.Firewall || len(u.Ports) == 0 {
		return true, nil
	}
	st, err := x.h.Firewall.List()
	if err != nil || !st.Present {
		return false, err
	}
	for _, p := range u.Ports {
		if !slices.ContainsFunc(st.SSHPaused, func(e firewall.PortEntry) bool { return e.Port == p }) {
			return false, nil
		}
	}
	return true, nil
}

func ports(ps []uint16) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// containment: outbound only to the allow list, inbound rate-limited, new
// SSH paused except from the admin whitelist.
type containment struct{ h *Host }

func (x *containment) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}

func (x *containment) Apply(_ context.Context, a *actions.Action) (string, error) {
	ttl, err := x.h.ttl(a)
	if err != nil {
		return "", err
	}
	fw := x.h.Firewall
	if err := fw.Ensure(); err != nil {
		return "", err
	}
	admin := x.h.Admin()
	if err := fw.SetAdmin(admin); err != nil {
		return "", err
	}
	c := firewall.Containment{Allow: x.h.Allow()}
	ssh := "new SSH NOT paused: no admin_ips configured, it would lock the operator out"
	if len(admin) > 0 {
		c.SSHPorts = x.h.SSHPorts()
		ssh = "new SSH to port(s) " + ports(c.SSHPorts) + " paused except from the admin whitelist"
	}
	if err := fw.Contain(c, ttl); err != nil {
		return "", err
	}
	allow := make([]string, len(c.Allow))
	for i, p := range c.Allow {
		allow[i] = p.String()
	}
	return fmt.Sprintf("containment for %s: outbound only to loopback, established flows and %s; new inbound rate-limited; %s",
		ttl, strings.Join(allow, " "), ssh), nil
}

func (x *containment) Revert(context.Context, *actions.Action) error { return x.h.Firewall.Uncontain() }

func (x *containment) InForce(context.Context, *actions.Action) (bool, error) {
	st, err := x.h.Firewall.List()
	if err != nil {
		return false, err
	}
	return st.Present && st.Containment.Active, nil
}

// disableUser expires the account; the previous expiry is recorded (in the
// journal and in the emergency registry) before the shadow file changes.
type disableUser struct{ h *Host }

func (x *disableUser) Snapshot(_ context.Context, a *actions.Action) (json.RawMessage, error) {
	prev, err := account.Expire(x.h.Accounts, a.Target)
	if err != nil {
		return nil, err
	}
	if err := x.h.Registry.AddUser(a.Target, prev); err != nil {
		return nil, err
	}
	return json.Marshal(account.Undo{User: a.Target, PrevExpire: prev, Changed: prev != account.DisabledExpire})
}

func (x *disableUser) Apply(_ context.Context, a *actions.Action) (string, error) {
	var protect []string
	if x.h.ProtectUsers != nil {
		protect = x.h.ProtectUsers()
	}
	if _, err := account.Disable(x.h.Accounts, a.Target, protect); err != nil {
		return "", err
	}
	return fmt.Sprintf("account %s expired (every login path refused, SSH keys included)", a.Target), nil
}

func (x *disableUser) Revert(_ context.Context, a *actions.Action) error {
	var u account.Undo
	if err := json.Unmarshal(a.Undo, &u); err != nil || u.User == "" {
		return fmt.Errorf("executors: disable-user %d: no snapshot to restore from", a.ID)
	}
	if _, err := account.Enable(x.h.Accounts, u); err != nil && !errors.Is(err, account.ErrNoUser) {
		return err
	}
	return x.h.Registry.RemoveUser(u.User)
}

func (x *disableUser) InForce(_ context.Context, a *actions.Action) (bool, error) {
	exp, err := account.Expire(x.h.Accounts, a.Target)
	if errors.Is(err, account.ErrNoUser) {
		return true, nil // gone: nothing to re-assert
	}
	return exp == account.DisabledExpire, err
}

// endSessions kills every process of the user (one-shot).
type endSessions struct{ h *Host }

func (x *endSessions) OneShot() bool { return true }
func (x *endSessions) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}

func (x *endSessions) Apply(ctx context.Context, a *actions.Action) (string, error) {
	uid, err := account.UID(x.h.Accounts, a.Target)
	if err != nil {
		return "", err
	}
	r, err := account.EndSessions(ctx, uid, x.h.procOptions())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ended %d process(es) of %s", len(r.Killed), a.Target), nil
}

func (x *endSessions) Revert(context.Context, *actions.Action) error { return nil }
func (x *endSessions) InForce(context.Context, *actions.Action) (bool, error) {
	return true, nil
}

// killTree stops then kills a process tree (one-shot).
type killTree struct{ h *Host }

func (x *killTree) OneShot() bool { return true }
func (x *killTree) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}

func (x *killTree) Apply(ctx context.Context, a *actions.Action) (string, error) {
	pid, err := strconv.Atoi(a.Target)
	if err != nil {
		return "", fmt.Errorf("executors: kill-tree: bad pid %q", a.Target)
	}
	// The pid named by the incident must still be the same process: one
	// started after the incident's action was created is a reuse.
	ticks, started, err := startOf(x.h.Proc, pid)
	if err != nil {
		return "", fmt.Errorf("executors: kill-tree %d: %w", pid, proctree.ErrGone)
	}
	if started.After(a.Created.Add(2 * time.Second)) {
		return "", fmt.Errorf("executors: kill-tree %d: started %s, after the incident: %w", pid, started.Format(time.RFC3339), proctree.ErrGone)
	}
	r, err := proctree.KillTree(ctx, proctree.Target{PID: pid, StartTime: ticks}, x.h.procOptions())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("killed %d process(es) of the tree of %d (%s)", len(r.Killed), pid, r.Method), nil
}

func (x *killTree) Revert(context.Context, *actions.Action) error { return nil }
func (x *killTree) InForce(context.Context, *actions.Action) (bool, error) {
	return true, nil
}

func (h *Host) procOptions() proctree.Options {
	o := proctree.Options{Proc: h.Proc}
	if h.ProtectPIDs != nil {
		o.Protect = h.ProtectPIDs()
	}
	return o
}
