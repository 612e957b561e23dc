// Package whitelist answers "is this entity one we trust?" for the detectors,
// the correlator and (later) the action guards. It compiles the policy's
// whitelist once per config application so lookups on the hot path are a
// few prefix comparisons.
package whitelist

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/picket-agent/picket/schema"
)

// Matcher holds the compiled whitelist. The zero value trusts nothing.
type Matcher struct {
	admin   []netip.Prefix
	trusted []netip.Prefix
	users   map[string]bool
}

// New compiles w. Entries were validated by the schema; an entry that still
// fails to parse is an error rather than silently trusting nothing.
func New(w schema.Whitelist) (*Matcher, error) {
	m := &Matcher{users: map[string]bool{}}
	var err error
	if m.admin, err = prefixes(w.AdminIPs); err != nil {
		return nil, fmt.Errorf("whitelist: admin_ips: %w", err)
	}
	if m.trusted, err = prefixes(w.IPs); err != nil {
		return nil, fmt.Errorf("whitelist: ips: %w", err)
	}
	for _, u := range w.Users {
		m.users[u.Name] = true
	}
	return m, nil
}

func prefixes(in map[string]schema.WhitelistIP) ([]netip.Prefix, error) {
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]netip.Prefix, 0, len(in))
	for _, n := range names {
		p, err := ParsePrefix(in[n].CIDR)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePrefix accepts an address or a CIDR; a bare address is a /32 or /128.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR", s)
	}
	// An IPv4-mapped address is the IPv4 address it maps (as the
	// matcher's lookups are).
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Admin reports whether a is an admin address: never counted as an attacker,
// never acted against.
func (m *Matcher) Admin(a netip.Addr) bool {
	return m != nil && a.IsValid() && contains(m.admin, a)
}

// Trusted reports whether a is a trusted (but not admin) address: its
// signals are recorded, its incidents stay at observe.
func (m *Matcher) Trusted(a netip.Addr) bool {
	return m != nil && a.IsValid() && (contains(m.trusted, a) || contains(m.admin, a))
}

// User reports whether the user name is whitelisted.
func (m *Matcher) User(name string) bool { return m != nil && m.users[name] }
