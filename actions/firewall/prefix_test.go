package firewall

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"198.18.1.2/32", "198.18.1.2/32", nil},
		{"198.18.1.2/24", "198.18.1.0/24", nil},
		{"::ffff:198.18.1.2/128", "198.18.1.2/32", nil},
		{"::ffff:198.18.0.0/112", "198.18.0.0/16", nil},
		{"2001:db8::1/64", "2001:db8::/64", nil},
		{"0.0.0.0/0", "", ErrPrefix},
		{"::/0", "", ErrPrefix},
		{"::ffff:0.0.0.0/96", "", ErrPrefix},
		{"::ffff:0:0/90", "", ErrPrefix},
	} {
		got, err := normalize(pfx(tc.in))
		if !errors.Is(err, tc.err) || (err == nil && got != pfx(tc.want)) {
			t.Errorf("normalize(%s) = %v, %v; want %s, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := normalize(netip.Prefix{}); !errors.Is(err, ErrPrefix) {
		t.Errorf("zero prefix: %v", err)
	}
}

func TestNormalizeAllDropsCovered(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"198.18.1.5/32", "198.18.1.0/24", "198.18.1.5/32"}, []string{"198.18.1.0/24"}},
		{[]string{"198.18.2.0/24", "198.18.1.0/24"}, []string{"198.18.1.0/24", "198.18.2.0/24"}},
		{[]string{"198.18.0.0/15", "198.19.255.255/32", "198.20.0.1/32"}, []string{"198.18.0.0/15", "198.20.0.1/32"}},
		{[]string{"2001:db8::/32", "2001:db8::1/128", "198.18.0.1/32"}, []string{"198.18.0.1/32", "2001:db8::/32"}},
		// An IPv4 /8 does not cover the IPv6 addresses sorted after it.
		{[]string{"10.0.0.0/8", "::a00:1/128"}, []string{"10.0.0.0/8", "::a00:1/128"}},
	} {
		got, err := normalizeAll(pfxs(tc.in...))
		if err != nil || !slices.Equal(got, pfxs(tc.want...)) {
			t.Errorf("normalizeAll(%v) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// encode is what the kernel stores for prefixes: start and end elements.
func encode(ps []netip.Prefix, ttl time.Duration) []rawElement {
	var out []rawElement
	for _, p := range ps {
		s, e, ok := interval(p)
		out = append(out, rawElement{Key: s, Timeout: ttl, Expires: ttl / 2})
		if ok {
			out = append(out, rawElement{Key: e, End: true})
		}
	}
	return out
}

func TestIntervalRoundTrip(t *testing.T) {
	for _, tc := range [][]string{
		{"198.18.1.2/32"},
		{"198.18.1.1/32", "198.18.1.2/32", "198.18.1.3/32"}, // adjacent: end and start share a key
		{"198.18.0.0/15", "255.255.255.255/32"},             // top of the space has no end element
		{"255.0.0.0/8", "1.0.0.0/8"},
		{"2001:db8::/32", "2001:db9::/128", "2001:db9::2/127", "ffff::/16"},
	} {
		ps := pfxs(tc...)
		keyLen := ps[0].Addr().BitLen() / 8
		if len(ps) > 1 && ps[1].Addr().Is4() != ps[0].Addr().Is4() {
			t.Fatal("one family per case")
		}
		raw := encode(ps, 3*time.Second)
		rand.Shuffle(len(raw), func(i, j int) { raw[i], raw[j] = raw[j], raw[i] })
		got := decodeIntervals(raw, keyLen)
		var gotP []netip.Prefix
		for _, r := range got {
			gotP = append(gotP, r.Prefix)
			if r.Timeout != 3*time.Second || r.Expires != 1500*time.Millisecond {
				t.Errorf("%s: timing %v %v", r.Prefix, r.Timeout, r.Expires)
			}
		}
		want := slices.Clone(ps)
		slices.SortFunc(want, comparePrefix)
		if !slices.Equal(gotP, want) {
			t.Errorf("round trip %v: got %v", tc, gotP)
		}
	}
}

func TestDecodeIntervalsForeignShapes(t *testing.T) {
	key := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	for _, tc := range []struct {
		name string
		raw  []rawElement
		want []string
	}{
		{"nft sentinel end at 0.0.0.0 is ignored",
			[]rawElement{{Key: key("0.0.0.0"), End: true}, {Key: key("198.18.1.2")}, {Key: key("198.18.1.3"), End: true}},
			[]string{"198.18.1.2/32"}},
		{"a merged range comes back as CIDRs",
			[]rawElement{{Key: key("198.18.0.1")}, {Key: key("198.18.0.7"), End: true}},
			[]string{"198.18.0.1/32", "198.18.0.2/31", "198.18.0.4/31", "198.18.0.6/32"}},
		{"two starts in a row: the first runs to the second",
			[]rawElement{{Key: key("198.18.0.0")}, {Key: key("198.18.0.4")}, {Key: key("198.18.0.8"), End: true}},
			[]string{"198.18.0.0/30", "198.18.0.4/30"}},
		{"keys of the wrong length are skipped",
			[]rawElement{{Key: []byte{1, 2}}, {Key: key("198.18.0.9")}, {Key: key("198.18.0.10"), End: true}},
			[]string{"198.18.0.9/32"}},
	} {
		var got []netip.Prefix
		for _, r := range decodeIntervals(tc.raw, 4) {
			got = append(got, r.Prefix)
		}
		if !slices.Equal(got, pfxs(tc.want...)) {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	idx := newOverlapIndex(pfxs("198.18.1.0/24", "198.18.3.7/32", "198.18.4.0/30", "2001:db8::/64"))
	for _, tc := range []struct {
		p              string
		exact, overlap bool
	}{
		{"198.18.1.0/24", true, false},
		{"198.18.1.5/32", false, true},  // inside a block in force
		{"198.18.0.0/16", false, true},  // contains blocks in force
		{"198.18.1.0/25", false, true},  // same start, narrower
		{"198.18.1.0/23", false, true},  // same start, wider
		{"198.18.2.0/24", false, false}, // between
		{"198.18.3.7/32", true, false},
		{"198.18.3.8/32", false, false}, // adjacent
		{"198.18.4.4/32", false, false},
		{"198.18.4.2/31", false, true},
		{"2001:db8::5/128", false, true},
		{"2001:db8:1::/64", false, false},
		{"1.2.3.4/32", false, false},
	} {
		exact, overlap := idx.classify(pfx(tc.p))
		if exact != tc.exact || overlap != tc.overlap {
			t.Errorf("classify(%s) = %v, %v; want %v, %v", tc.p, exact, overlap, tc.exact, tc.overlap)
		}
	}
}

func TestCheckTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{{0, false}, {-time.Second, false}, {999 * time.Millisecond, false}, {time.Second, true}, {time.Hour, true}, {MaxTTL + 1, false}} {
		if err := checkTTL(tc.ttl); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTTL)) {
			t.Errorf("checkTTL(%s) = %v", tc.ttl, err)
		}
	}
}

// FuzzDecodeIntervals feeds arbitrary kernel answers to the decoder: it must
// not panic and must only return masked, disjoint, sorted prefixes of the
// set's family; a prefix encoded by interval must come back unchanged.
func FuzzDecodeIntervals(f *testing.F) {
	f.Add([]byte{198, 18, 1, 2, 0, 198, 18, 1, 3, 1}, false, []byte{198, 18, 0, 0}, uint8(15))
	f.Add([]byte{0, 0, 0, 0, 1}, true, []byte{32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(128))
	f.Fuzz(func(t *testing.T, data []byte, v6 bool, addr []byte, bits uint8) {
		keyLen := 4
		if v6 {
			keyLen = 16
		}
		var raw []rawElement
		for len(data) > keyLen {
			raw = append(raw, rawElement{Key: data[:keyLen], End: data[keyLen]&1 == 1})
			data = data[keyLen+1:]
		}
		got := decodeIntervals(raw, keyLen)
		for i, r := range got {
			p := r.Prefix
			if !p.IsValid() || p.Masked() != p || p.Addr().BitLen() != keyLen*8 {
				t.Fatalf("bad prefix %v", p)
			}
			if i > 0 && !lastAddr(got[i-1].Prefix).Less(p.Addr()) {
				t.Fatalf("not sorted and disjoint: %v then %v", got[i-1].Prefix, p)
			}
		}
		a, ok := netip.AddrFromSlice(addr)
		if !ok || int(bits) > a.BitLen() {
			return
		}
		p, err := normalize(netip.PrefixFrom(a, int(bits)))
		if err != nil {
			return
		}
		back := decodeIntervals(encode([]netip.Prefix{p}, time.Second), p.Addr().BitLen()/8)
		if len(back) != 1 || back[0].Prefix != p {
			t.Fatalf("round trip of %v gave %v", p, back)
		}
	})
}
