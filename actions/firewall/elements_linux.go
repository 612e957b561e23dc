package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// goneRetries bounds how often a batch is retried after an element expired
// between reading the set and writing it (a delete of an expired element
// fails the whole batch with ENOENT).
const goneRetries = 3

// set is a reference to one of our sets, enough to list or change elements.
func (f *Firewall) set(name string) *nftables.Set {
	for _, s := range setSpecs() {
		if s.name == name {
			return s.set(f.table)
		}
	}
	panic("firewall: unknown set " + name) // a typo in this package
}

// elements lists a set's elements; a missing table is ErrNotPresent.
func (f *Firewall) elements(s *nftables.Set) ([]nftables.SetElement, error) {
	es, err := f.conn.GetSetElements(s)
	if err == nil {
		return es, nil
	}
	// The library drops the errno here: ask whether the table is there.
	if ok, terr := f.tableExists(); terr == nil && !ok {
		return nil, fmt.Errorf("firewall: list set %s: %w", s.Name, ErrNotPresent)
	}
	return nil, fmt.Errorf("firewall: list set %s: %w", s.Name, err)
}

func (f *Firewall) intervals(s *nftables.Set) ([]decodedRange, error) {
	es, err := f.elements(s)
	if err != nil {
		return nil, err
	}
	raw := make([]rawElement, 0, len(es))
	for _, e := range es {
		raw = append(raw, rawElement{Key: e.Key, End: e.IntervalEnd, Timeout: e.Timeout, Expires: e.Expires})
	}
	return decodeIntervals(raw, int(s.KeyType.Bytes)), nil
}

func (f *Firewall) index(s *nftables.Set) (overlapIndex, error) {
	rs, err := f.intervals(s)
	if err != nil {
		return nil, err
	}
	ps := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		ps = append(ps, r.Prefix)
	}
	return newOverlapIndex(ps), nil
}

func portElement(p uint16, ttl time.Duration) nftables.SetElement {
	return nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p), Timeout: ttl}
}

func (f *Firewall) ports(s *nftables.Set) (map[uint16]bool, error) {
	es, err := f.elements(s)
	if err != nil {
		return nil, err
	}
	out := map[uint16]bool{}
	for _, e := range es {
		if len(e.Key) == 2 {
			out[binaryutil.BigEndian.Uint16(e.Key)] = true
		}
	}
	return out, nil
}

func (f *Firewall) portEntries(name string, now time.Time) ([]PortEntry, error) {
	es, err := f.elements(f.set(name))
	if err != nil {
		return nil, err
	}
	var out []PortEntry
	for _, e := range es {
		if len(e.Key) != 2 {
			continue
		}
		pe := PortEntry{Port: binaryutil.BigEndian.Uint16(e.Key), Timeout: e.Timeout}
		if e.Timeout != 0 {
			pe.Expires = now.Add(e.Expires)
		}
		out = append(out, pe)
	}
	slices.SortFunc(out, func(a, b PortEntry) int { return int(a.Port) - int(b.Port) })
	return out, nil
}

// prefixElements encodes prefixes for an interval set: the timeout goes on
// the start element only (the kernel refuses it on an interval end, and
// expires the end with its start).
func prefixElements(ps []netip.Prefix, ttl time.Duration) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(ps))
	for _, p := range ps {
		start, end, hasEnd := interval(p)
		out = append(out, nftables.SetElement{Key: start, Timeout: ttl})
		if hasEnd {
			out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return out
}

// addElements and delElements queue messages of at most 2*MaxChunk elements
// each: one netlink attribute holds at most 64 KiB.
func (f *Firewall) addElements(s *nftables.Set, es []nftables.SetElement) error {
	for c := range slices.Chunk(es, 2*MaxChunk) {
		if err := f.conn.SetAddElements(s, c); err != nil {
			return fmt.Errorf("firewall: add elements to %s: %w", s.Name, err)
		}
	}
	return nil
}

func (f *Firewall) delElements(s *nftables.Set, es []nftables.SetElement) error {
	for c := range slices.Chunk(es, 2*MaxChunk) {
		if err := f.conn.SetDeleteElements(s, c); err != nil {
			return fmt.Errorf("firewall: delete elements from %s: %w", s.Name, err)
		}
	}
	return nil
}

// addPrefixes queues the prefixes into the v4 or v6 set.
func (f *Firewall) addPrefixes(s4, s6 *nftables.Set, ps []netip.Prefix, ttl time.Duration) error {
	v4, v6 := splitFamilies(ps)
	if err := f.addElements(s4, prefixElements(v4, ttl)); err != nil {
		return err
	}
	return f.addElements(s6, prefixElements(v6, ttl))
}

// family is the prefixes of one address family and the set they go to.
type family struct {
	name string
	ps   []netip.Prefix
}

// families splits ps into the v4 set n4 and the v6 set n6, leaving out a
// family with nothing in it.
func families(n4, n6 string, ps []netip.Prefix) []family {
	v4, v6 := splitFamilies(ps)
	var out []family
	for _, fam := range []family{{n4, v4}, {n6, v6}} {
		if len(fam.ps) > 0 {
			out = append(out, fam)
		}
	}
	return out
}

func splitFamilies(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

// flush sends the queued batch. ENOENT means an element to delete is gone
// (expired) or a set is missing: the latter only with the table gone.
func (f *Firewall) flush(what string) error {
	err := f.conn.Flush()
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOENT) {
		if ok, terr := f.tableExists(); terr == nil && !ok {
			return fmt.Errorf("firewall: %s: %w", what, ErrNotPresent)
		}
	}
	return fmt.Errorf("firewall: %s: %w", what, err)
}

// retryGone runs fn again when it failed because an element expired under
// it; fn must re-read what it deletes.
func (f *Firewall) retryGone(fn func() error) error {
	var err error
	for range goneRetries {
		err = fn()
		if err == nil || errors.Is(err, ErrNotPresent) || !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return err
}

// upsertPrefixes adds ps to the v4/v6 sets with ttl; elements already there
// are deleted and added again in the same batch, which restarts their
// timeout on every kernel (re-adding alone does not on older ones).
func (f *Firewall) upsertPrefixes(n4, n6 string, ps []netip.Prefix, ttl time.Duration) error {
	skipped, err := f.upsert(n4, n6, ps, ttl)
	if err == nil && len(skipped) > 0 {
		err = fmt.Errorf("%w: %v", ErrOverlap, skipped)
	}
	return err
}

// upsert is upsertPrefixes returning the prefixes it skipped because they
// overlap a different element in force.
func (f *Firewall) upsert(n4, n6 string, ps []netip.Prefix, ttl time.Duration) ([]netip.Prefix, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	ps, err := normalizeAll(ps)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var skipped []netip.Prefix
	for _, fam := range families(n4, n6, ps) {
		s := f.set(fam.name)
		idx := f.cached(fam.name)
		var added []netip.Prefix
		for chunk := range slices.Chunk(fam.ps, f.opt.Chunk) {
			err := f.retryGone(func() error {
				if idx == nil {
					var err error
					if idx, err = f.index(s); err != nil {
						return err
					}
					f.remember(fam.name, idx)
				}
				var del, add, skip []netip.Prefix
				for _, p := range chunk {
					exact, overlap := idx.classify(p)
					switch {
					case overlap:
						skip = append(skip, p)
						continue
					case exact:
						del = append(del, p)
					}
					add = append(add, p)
				}
				if len(add) == 0 {
					skipped = append(skipped, skip...)
					return nil
				}
				if err := f.delElements(s, prefixElements(del, 0)); err != nil {
					return err
				}
				if err := f.addElements(s, prefixElements(add, ttl)); err != nil {
					return err
				}
				err := f.flush(fmt.Sprintf("add %d prefixes to %s", len(add), s.Name))
				if err != nil {
					idx = nil // read again before a retry
					f.forget(fam.name)
					return err
				}
				added = append(added, add...)
				skipped = append(skipped, skip...)
				return nil
			})
			if err != nil {
				f.forget(fam.name)
				return skipped, err
			}
		}
		f.extend(fam.name, added)
	}
	return skipped, nil
}

// deletePrefix removes p; absent, expired or no table at all is success.
func (f *Firewall) deletePrefix(n4, n6 string, p netip.Prefix) error {
	p, err := normalize(p)
	if err != nil {
		return err
	}
	name := n6
	if p.Addr().Is4() {
		name = n4
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forget(name)
	return f.deleteEach(f.set(name), []netip.Prefix{p})
}
