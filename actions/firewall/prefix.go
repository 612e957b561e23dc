package firewall

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// normalize makes p canonical: IPv4-mapped IPv6 becomes IPv4 (the kernel sees
// a v4 packet), host bits are cleared. A /0 is refused: blocking everything
// is never a temporary action.
func normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrPrefix, p)
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("%w: %s mixes IPv4-mapped and IPv6 space", ErrPrefix, p)
		}
		a, bits = a.Unmap(), bits-96
	}
	if bits == 0 {
		return netip.Prefix{}, fmt.Errorf("%w: %s covers every address", ErrPrefix, p)
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// normalizeAll normalizes ps and drops duplicates and prefixes covered by
// another one in ps (an interval set refuses overlaps).
func normalizeAll(ps []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		n, err := normalize(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return dropCovered(out), nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// dropCovered sorts masked prefixes and keeps only the outermost ones. CIDR
// ranges either nest or are disjoint, so after sorting by (start, length) a
// prefix is covered exactly when the last one kept contains it.
func dropCovered(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefix)
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Addr().BitLen() == p.Addr().BitLen() &&
			out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// lastAddr is the highest address in a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// interval gives the kernel encoding of a masked prefix in an interval set:
// a start key and an exclusive end key flagged "interval end". The end is
// absent when the prefix reaches the top of the address space.
func interval(p netip.Prefix) (start, end []byte, hasEnd bool) {
	start = p.Addr().AsSlice()
	next := lastAddr(p).Next()
	if !next.IsValid() {
		return start, nil, false
	}
	return start, next.AsSlice(), true
}

// rawElement is what the kernel lists for one element of an interval set.
type rawElement struct {
	Key     []byte
	End     bool // the "interval end" flag
	Timeout time.Duration
	Expires time.Duration // time left
}

// decodedRange is one interval [start, end) read back from the kernel, with
// the timing of its start element.
type decodedRange struct {
	Prefix  netip.Prefix
	Timeout time.Duration
	Expires time.Duration
}

// decodeIntervals rebuilds the prefixes held by an interval set from its
// elements (any order). A range that is not one CIDR (someone else's nft with
// auto-merge) comes back as the CIDRs that cover it exactly; end elements
// without a start (nft's 0.0.0.0 sentinel) are ignored; keys of the wrong
// length are skipped.
func decodeIntervals(elems []rawElement, keyLen int) []decodedRange {
	es := make([]rawElement, 0, len(elems))
	for _, e := range elems {
		if len(e.Key) == keyLen {
			es = append(es, e)
		}
	}
	// Same key: the end of one range sorts before the start of the next.
	slices.SortStableFunc(es, func(a, b rawElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.End == b.End:
			return 0
		case a.End:
			return -1
		default:
			return 1
		}
	})
	var out []decodedRange
	var open *rawElement
	emit := func(start rawElement, end []byte) {
		first, _ := netip.AddrFromSlice(start.Key)
		var last netip.Addr
		if end == nil {
			last = lastAddr(netip.PrefixFrom(first, 0).Masked())
		} else {
			e, _ := netip.AddrFromSlice(end)
			last = e.Prev()
			if !last.IsValid() || last.Less(first) {
				return
			}
		}
		for _, p := range rangePrefixes(first, last) {
			out = append(out, decodedRange{Prefix: p, Timeout: start.Timeout, Expires: start.Expires})
		}
	}
	for i := range es {
		e := es[i]
		switch {
		case !e.End && open == nil:
			open = &es[i]
		case !e.End:
			// Two starts in a row: the first range runs up to the second.
			emit(*open, e.Key)
			open = &es[i]
		case open != nil:
			emit(*open, e.Key)
			open = nil
		}
	}
	if open != nil {
		emit(*open, nil)
	}
	return out
}

// rangePrefixes splits the inclusive range [first, last] into the fewest
// CIDR prefixes.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	bitLen := first.BitLen()
	for first.IsValid() && !last.Less(first) {
		bits := 0
		for ; bits < bitLen; bits++ {
			p := netip.PrefixFrom(first, bits)
			if p.Masked().Addr() == first && !last.Less(lastAddr(p.Masked())) {
				break
			}
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		first = lastAddr(p).Next()
	}
	return out
}

// overlapIndex answers "does p overlap an element in force other than p
// itself" against a sorted, disjoint list of prefixes of one family.
type overlapIndex []netip.Prefix

func newOverlapIndex(ps []netip.Prefix) overlapIndex {
	s := slices.Clone(ps)
	slices.SortFunc(s, comparePrefix)
	return s
}

// classify says whether p is already in force as is (exact) or overlaps a
// different element (overlap). Elements are disjoint, so only the last one
// starting at or before p can contain p's start, and only the first one
// starting after it can lie inside p.
func (x overlapIndex) classify(p netip.Prefix) (exact, overlap bool) {
	i, _ := slices.BinarySearchFunc(x, p, func(e, t netip.Prefix) int {
		if e.Addr().Compare(t.Addr()) <= 0 {
			return -1
		}
		return 1
	})
	if i > 0 {
		switch q := x[i-1]; {
		case q == p:
			exact = true
		case q.Addr().BitLen() == p.Addr().BitLen() && q.Contains(p.Addr()):
			overlap = true
		}
	}
	if i < len(x) && p.Contains(x[i].Addr()) {
		overlap = true
	}
	return exact, overlap
}
