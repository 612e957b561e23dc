package whitelist

import (
	"net/netip"
	"testing"

	"github.com/picket-agent/picket/schema"
)

func TestMatcher(t *testing.T) {
	m, err := New(schema.Whitelist{
		AdminIPs: map[string]schema.WhitelistIP{"office": {CIDR: "203.0.113.0/24"}, "v6": {CIDR: "2001:db8::/32"}, "bastion": {CIDR: "198.51.100.7"}},
		IPs:      map[string]schema.WhitelistIP{"monitor": {CIDR: "192.0.2.10"}},
		Users:    map[string]schema.WhitelistUser{"deploy": {Name: "deploy"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip             string
		admin, trusted bool
	}{
		{"203.0.113.77", true, true},
		{"::ffff:203.0.113.77", true, true}, // IPv4-mapped form still matches
		{"2001:db8::1", true, true},
		{"198.51.100.7", true, true},
		{"198.51.100.8", false, false},
		{"192.0.2.10", false, true},
		{"192.0.2.11", false, false},
	} {
		a := netip.MustParseAddr(c.ip)
		if m.Admin(a) != c.admin || m.Trusted(a) != c.trusted {
			t.Errorf("%s: admin %v trusted %v, want %v %v", c.ip, m.Admin(a), m.Trusted(a), c.admin, c.trusted)
		}
	}
	if !m.User("deploy") || m.User("root") {
		t.Error("user whitelist wrong")
	}
	var none *Matcher
	if none.Admin(netip.MustParseAddr("203.0.113.1")) || none.User("x") {
		t.Error("nil matcher trusts something")
	}
	if _, err := New(schema.Whitelist{AdminIPs: map[string]schema.WhitelistIP{"bad": {CIDR: "nope"}}}); err == nil {
		t.Error("invalid entry accepted")
	}
}

func TestParsePrefix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"198.51.100.7", "198.51.100.7/32"},
		{"::ffff:198.51.100.7", "198.51.100.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"203.0.113.9/24", "203.0.113.0/24"},
		{"2001:db8::/32", "2001:db8::/32"},
	} {
		p, err := ParsePrefix(c.in)
		if err != nil || p.String() != c.want {
			t.Errorf("%s: %v %v, want %s", c.in, p, err, c.want)
		}
	}
	if _, err := ParsePrefix("web1"); err == nil {
		t.Error("a name was accepted")
	}
}
