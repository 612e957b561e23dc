package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// sets returns the v4 and v6 set names of d.
func (d Direction) sets() (string, string) {
	switch d {
	case Outbound:
		return setOut4, setOut6
	case Limited:
		return setRate4, setRate6
	}
	return setBlock4, setBlock6
}

// AddMany blocks (or limits) every prefix of ps in d's sets until ttl, in
// chunked netlink batches, and returns the prefixes it skipped because
// they overlap a different element in force. Adding what is there
// restarts its timeout.
func (f *Firewall) AddMany(d Direction, ps []netip.Prefix, ttl time.Duration) ([]netip.Prefix, error) {
	n4, n6 := d.sets()
	return f.upsert(n4, n6, ps, ttl)
}

// DeleteMany lifts every prefix of ps from d's sets, in chunked netlink
// batches; absent or expired elements, or no table at all, are success.
func (f *Firewall) DeleteMany(d Direction, ps []netip.Prefix) error {
	ps, err := normalizeAll(ps)
	if err != nil {
		return err
	}
	n4, n6 := d.sets()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fam := range families(n4, n6, ps) {
		s := f.set(fam.name)
		f.forget(fam.name)
		err := f.retryGone(func() error {
			// Only what is there: one absent element fails a whole batch.
			idx, err := f.index(s)
			if err != nil {
				// The set cannot be read (no table, or an errno the
				// library does not keep): lift one by one, where an absent
				// element is no error.
				return f.deleteEach(s, fam.ps)
			}
			var del []netip.Prefix
			for _, p := range fam.ps {
				if exact, _ := idx.classify(p); exact {
					del = append(del, p)
				}
			}
			for chunk := range slices.Chunk(del, f.opt.Chunk) {
				if err := f.delElements(s, prefixElements(chunk, 0)); err != nil {
					return err
				}
				if err := f.flush(fmt.Sprintf("delete %d prefixes from %s", len(chunk), s.Name)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteEach deletes ps from s one netlink batch each (the lock is held).
func (f *Firewall) deleteEach(s *nftables.Set, ps []netip.Prefix) error {
	for _, p := range ps {
		if err := f.delElements(s, prefixElements([]netip.Prefix{p}, 0)); err != nil {
			return err
		}
		if err := f.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("firewall: delete %s from %s: %w", p, s.Name, err)
		}
	}
	return nil
}
