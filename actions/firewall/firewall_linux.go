package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Firewall owns one nftables table. Its methods are safe for concurrent use
// (they are serialized: one netlink batch at a time).
type Firewall struct {
	opt   Options
	log   *slog.Logger
	table *nftables.Table

	mu   sync.Mutex
	conn *nftables.Conn
	now  func() time.Time
	// watching, when set (tests), is called each time Watch has subscribed.
	watching func()
	// cache holds each set's elements between calls (under mu): upsert
	// lists a set only when its cache is cold, older than indexTTL or
	// proved wrong by an error, so a burst's batches do not each re-read a
	// set of 50,000 elements.
	cache map[string]cachedIndex
}

type cachedIndex struct {
	idx overlapIndex
	at  time.Time
}

// indexTTL bounds how long a cached set listing is trusted; elements that
// expired in the kernel meanwhile make a delete fail, which re-reads it.
const indexTTL = 5 * time.Second

func (f *Firewall) cached(set string) overlapIndex {
	c, ok := f.cache[set]
	if !ok || f.now().Sub(c.at) > indexTTL {
		return nil
	}
	return c.idx
}

// remember caches a fresh listing of set.
func (f *Firewall) remember(set string, idx overlapIndex) {
	if f.cache == nil {
		f.cache = map[string]cachedIndex{}
	}
	f.cache[set] = cachedIndex{idx: idx, at: f.now()}
}

// extend adds what was just written to set's cached listing (its age
// stays: it is no fresher for it).
func (f *Firewall) extend(set string, added []netip.Prefix) {
	c, ok := f.cache[set]
	if !ok || len(added) == 0 {
		return
	}
	c.idx = slices.Compact(newOverlapIndex(append(slices.Clone(c.idx), added...)))
	f.cache[set] = c
}

func (f *Firewall) forget(set string) { delete(f.cache, set) }

func (f *Firewall) forgetAll() { clear(f.cache) }

// New opens a netlink connection to nftables in the caller's network
// namespace, or in Options.NetNS. It changes nothing; call Ensure.
func New(o Options) (*Firewall, error) {
	o = o.withDefaults()
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if o.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(o.NetNS))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("firewall: open netlink: %w", err)
	}
	return &Firewall{
		opt: o, log: o.Logger, conn: conn, now: time.Now,
		table: &nftables.Table{Name: o.Table, Family: nftables.TableFamilyINet},
	}, nil
}

// Close closes the netlink connection; what is in force stays in force.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.conn.CloseLasting(); err != nil {
		return fmt.Errorf("firewall: close netlink: %w", err)
	}
	return nil
}

// Ensure creates the table, its sets, chains and rules when missing, and
// repairs a partial or edited table in one atomic batch. When the table is
// whole it writes nothing.
func (f *Firewall) Ensure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	wrote, err := f.ensure()
	if wrote || err != nil {
		f.forgetAll()
	}
	return err
}

// Present says whether the table is there and whole (every set, chain and
// rule as Ensure makes them).
func (f *Firewall) Present() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, err := f.inspect()
	if err != nil {
		return false, err
	}
	return len(f.diff(in)) == 0, nil
}

// Remove deletes the table and everything in it; removing a missing table
// is not an error.
func (f *Firewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetAll()
	f.conn.DelTable(f.table)
	if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("firewall: delete table %s: %w", f.opt.Table, err)
	}
	return nil
}

func (f *Firewall) tableExists() (bool, error) {
	_, err := f.conn.ListTableOfFamily(f.opt.Table, nftables.TableFamilyINet)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	default:
		return false, fmt.Errorf("firewall: look up table %s: %w", f.opt.Table, err)
	}
}

// Block drops every packet from p (input and forward) until ttl passes, in
// the kernel. Blocking what is already blocked refreshes its timeout.
func (f *Firewall) Block(p netip.Prefix, ttl time.Duration) error {
	return f.BlockMany([]netip.Prefix{p}, ttl)
}

// BlockMany blocks many prefixes in batches of Options.Chunk. A prefix that
// overlaps a different block in force is skipped and reported with
// ErrOverlap; the others are applied.
func (f *Firewall) BlockMany(ps []netip.Prefix, ttl time.Duration) error {
	return f.upsertPrefixes(setBlock4, setBlock6, ps, ttl)
}

// Unblock lifts a block early; absent or already expired is not an error.
func (f *Firewall) Unblock(p netip.Prefix) error {
	return f.deletePrefix(setBlock4, setBlock6, p)
}

// BlockOutbound drops every packet to p (output and forward) until ttl.
func (f *Firewall) BlockOutbound(p netip.Prefix, ttl time.Duration) error {
	return f.upsertPrefixes(setOut4, setOut6, []netip.Prefix{p}, ttl)
}

// UnblockOutbound lifts an outbound block early.
func (f *Firewall) UnblockOutbound(p netip.Prefix) error {
	return f.deletePrefix(setOut4, setOut6, p)
}

// RateLimit limits new connections from each address in p to
// Options.RatePerSecond (per source address, not for p as a whole) until ttl.
func (f *Firewall) RateLimit(p netip.Prefix, ttl time.Duration) error {
	return f.upsertPrefixes(setRate4, setRate6, []netip.Prefix{p}, ttl)
}

// Unlimit lifts a rate limit early.
func (f *Firewall) Unlimit(p netip.Prefix) error {
	return f.deletePrefix(setRate4, setRate6, p)
}

// SetAdmin replaces the admin whitelist, atomically: admin sources are never
// blocked, rate-limited or paused by this table.
func (f *Firewall) SetAdmin(ps []netip.Prefix) error {
	ps, err := normalizeAll(ps)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s4, s6 := f.set(setAdmin4), f.set(setAdmin6)
	f.conn.FlushSet(s4)
	f.conn.FlushSet(s6)
	if err := f.addPrefixes(s4, s6, ps, 0); err != nil {
		return err
	}
	return f.flush("set admin whitelist")
}

// PauseSSH drops new TCP connections to ports, except from the admin
// whitelist, until ttl. Pausing a paused port refreshes its timeout.
func (f *Firewall) PauseSSH(ports []uint16, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.retryGone(func() error {
		s := f.set(setSSH)
		have, err := f.ports(s)
		if err != nil {
			return err
		}
		var del []nftables.SetElement
		for _, p := range ports {
			if have[p] {
				del = append(del, portElement(p, 0))
			}
		}
		add := make([]nftables.SetElement, 0, len(ports))
		for _, p := range ports {
			add = append(add, portElement(p, ttl))
		}
		if err := f.delElements(s, del); err != nil {
			return err
		}
		if err := f.addElements(s, add); err != nil {
			return err
		}
		return f.flush("pause ssh")
	})
}

// ResumeSSH lifts the pause of ports early; ports not paused are ignored.
func (f *Firewall) ResumeSSH(ports []uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.retryGone(func() error {
		s := f.set(setSSH)
		have, err := f.ports(s)
		if err != nil {
			return err
		}
		var del []nftables.SetElement
		for _, p := range slices.Compact(slices.Sorted(slices.Values(ports))) {
			if have[p] {
				del = append(del, portElement(p, 0))
			}
		}
		if len(del) == 0 {
			return nil
		}
		if err := f.delElements(s, del); err != nil {
			return err
		}
		return f.flush("resume ssh")
	})
	if errors.Is(err, ErrNotPresent) {
		return nil
	}
	return err
}

// Contain turns containment mode on until ttl, in the kernel: one batch
// replaces the whitelist and paused ports and arms contain_active. Calling
// it again replaces the whitelist and refreshes the timeout.
func (f *Firewall) Contain(c Containment, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	allow, err := normalizeAll(c.Allow)
	if err != nil {
		return err
	}
	ports := slices.Compact(slices.Sorted(slices.Values(c.SSHPorts)))
	f.mu.Lock()
	defer f.mu.Unlock()
	a4, a6, ssh, active := f.set(setAllow4), f.set(setAllow6), f.set(setContainSSH), f.set(setActive)
	for _, s := range []*nftables.Set{a4, a6, ssh, active} {
		f.conn.FlushSet(s)
	}
	if err := f.addPrefixes(a4, a6, allow, ttl+allowGrace); err != nil {
		return err
	}
	var pe []nftables.SetElement
	for _, p := range ports {
		pe = append(pe, portElement(p, ttl))
	}
	if err := f.addElements(ssh, pe); err != nil {
		return err
	}
	if err := f.addElements(active, []nftables.SetElement{
		{Key: []byte{unix.NFPROTO_IPV4}, Timeout: ttl},
		{Key: []byte{unix.NFPROTO_IPV6}, Timeout: ttl},
	}); err != nil {
		return err
	}
	return f.flush("contain")
}

// Uncontain ends containment mode now. The per-source meters are emptied
// too, so nothing containment created stays behind.
func (f *Firewall) Uncontain() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range []string{setActive, setAllow4, setAllow6, setContainSSH, setMeter4, setMeter6} {
		f.conn.FlushSet(f.set(name))
	}
	if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("firewall: uncontain: %w", err)
	}
	return nil
}

// List reads everything in force from the kernel, with expiry times. A
// missing table is State{Present: false} and no error; a partial one (a set
// gone) is an error: Ensure first.
func (f *Firewall) List() (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st State
	ok, err := f.tableExists()
	if err != nil || !ok {
		return st, err
	}
	st.Present = true
	now := f.now()
	entries := func(names ...string) ([]Entry, error) {
		var out []Entry
		for _, n := range names {
			rs, err := f.intervals(f.set(n))
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				out = append(out, r.entry(now))
			}
		}
		return out, nil
	}
	if st.Blocked, err = entries(setBlock4, setBlock6); err != nil {
		return st, err
	}
	if st.Outbound, err = entries(setOut4, setOut6); err != nil {
		return st, err
	}
	if st.RateLimited, err = entries(setRate4, setRate6); err != nil {
		return st, err
	}
	admin, err := entries(setAdmin4, setAdmin6)
	if err != nil {
		return st, err
	}
	for _, e := range admin {
		st.Admin = append(st.Admin, e.Prefix)
	}
	if st.SSHPaused, err = f.portEntries(setSSH, now); err != nil {
		return st, err
	}
	c := &st.Containment
	if c.Allow, err = entries(setAllow4, setAllow6); err != nil {
		return st, err
	}
	if c.SSHPorts, err = f.portEntries(setContainSSH, now); err != nil {
		return st, err
	}
	act, err := f.elements(f.set(setActive))
	if err != nil {
		return st, err
	}
	for _, e := range act {
		c.Active = true
		if u := now.Add(e.Expires); u.After(c.Until) {
			c.Until = u
		}
	}
	return st, nil
}

func (r decodedRange) entry(now time.Time) Entry {
	e := Entry{Prefix: r.Prefix, Timeout: r.Timeout}
	if r.Timeout != 0 {
		e.Expires = now.Add(r.Expires)
	}
	return e
}
