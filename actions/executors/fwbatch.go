package executors

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/firewall"
	"github.com/picket-agent/picket/agent/whitelist"
)

func (x *fwPrefix) direction() firewall.Direction {
	switch x.kind {
	case actions.BlockDestination:
		return firewall.Outbound
	case actions.RateLimit:
		return firewall.Limited
	}
	return firewall.Inbound
}

// ApplyBatch implements actions.Batcher: every action's prefix goes into
// the kind's set with its own remaining time, one netlink batch per chunk
// of prefixes sharing a timeout (a burst's actions share one to the
// second).
func (x *fwPrefix) ApplyBatch(_ context.Context, as []*actions.Action) ([]string, []error) {
	notes := make([]string, len(as))
	errs := make([]error, len(as))
	fw := x.h.Firewall
	if err := fw.Ensure(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return notes, errs
	}
	byTTL := map[time.Duration][]int{}
	prefixes := make([]netip.Prefix, len(as))
	for i, a := range as {
		p, err := whitelist.ParsePrefix(a.Target)
		if err != nil {
			errs[i] = err
			continue
		}
		ttl, err := x.h.ttl(a)
		if err != nil {
			errs[i] = err
			continue
		}
		prefixes[i] = p
		byTTL[ttl] = append(byTTL[ttl], i)
	}
	verb := map[string]string{actions.BlockSource: "inbound from", actions.BlockDestination: "outbound to", actions.RateLimit: "new connections rate-limited from"}[x.kind]
	for ttl, idx := range byTTL {
		ps := make([]netip.Prefix, len(idx))
		for j, i := range idx {
			ps[j] = prefixes[i]
		}
		skipped, err := fw.AddMany(x.direction(), ps, ttl)
		skip := map[netip.Prefix]bool{}
		for _, p := range skipped {
			skip[p] = true
		}
		for _, i := range idx {
			switch {
			case err != nil:
				errs[i] = err
			case skip[prefixes[i]]:
				errs[i] = fmt.Errorf("%w: %s", firewall.ErrOverlap, prefixes[i])
			default:
				notes[i] = fmt.Sprintf("nftables: %s %s dropped (kernel timeout %s)", verb, prefixes[i], ttl)
			}
		}
	}
	return notes, errs
}

// RevertBatch implements actions.Batcher.
func (x *fwPrefix) RevertBatch(_ context.Context, as []*actions.Action) []error {
	errs := make([]error, len(as))
	var ps []netip.Prefix
	var idx []int
	for i, a := range as {
		p, err := whitelist.ParsePrefix(a.Target)
		if err != nil {
			continue // nothing was ever applied for an unparseable target
		}
		ps, idx = append(ps, p), append(idx, i)
	}
	if len(ps) == 0 {
		return errs
	}
	if err := x.h.Firewall.DeleteMany(x.direction(), ps); err != nil {
		for _, i := range idx {
			errs[i] = err
		}
	}
	return errs
}

// InForceBatch implements actions.Batcher from one listing of the table.
func (x *fwPrefix) InForceBatch(_ context.Context, as []*actions.Action) ([]bool, error) {
	out := make([]bool, len(as))
	st, err := x.h.Firewall.List()
	if err != nil {
		return nil, err
	}
	if !st.Present {
		return out, nil
	}
	have := map[netip.Prefix]bool{}
	for _, e := range x.entries(st) {
		have[e.Prefix] = true
	}
	for i, a := range as {
		p, err := whitelist.ParsePrefix(a.Target)
		out[i] = err != nil || have[p]
	}
	return out, nil
}
