package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
)

// A botnet of 1,700 addresses failing a dozen times each with a new user
// name every time, among 3,000 addresses seen once: the per-source
// table stays at its cap, the evidence all sources hold together stays
// within evidenceBudget (plus each source's first event), the budget's
// count matches what the sources hold after evictions and episode resets,
// and every brute-force report still carries evidence and its exact count.
func TestSSHPerSourceBounds(t *testing.T) {
	const capacity, addrs, oneShot, per = 2000, 1700, 250, 12
	p := testPolicy(t)
	p.Detectors.MaxTrackedSources = capacity
	wl, err := whitelist.New(p.Whitelist)
	if err != nil {
		t.Fatal(err)
	}
	s := New(p, wl)
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	reports := 0
	emit := func(sg signal.Signal) {
		if sg.Rule != RuleSSHBruteForce {
			return
		}
		reports++
		if len(sg.Evidence) == 0 || len(sg.Evidence) > signal.MaxEvidence {
			t.Fatalf("%s: %d evidence events", sg.Reason, len(sg.Evidence))
		}
	}
	n := 0
	for r := 0; r < per; r++ {
		for a := 0; a < addrs+oneShot; a++ {
			addr := ipFrom(0xc6120000 + uint32(a))
			if a >= addrs {
				addr = ipFrom(0xc6130000 + uint32(r*oneShot+a))
			}
			at := start.Add(time.Duration(n) * time.Millisecond)
			user := fmt.Sprintf("user%d", r)
			ev := event.Event{Time: at, Kind: event.AuthFailure, Addr: addr, User: user, Method: "password",
				Line: fmt.Sprintf("%s host sshd[1]: Failed password for invalid user %s from %s port 22 ssh2", at.Format(time.RFC3339), user, addr)}
			s.Observe(&ev, emit)
			n++
		}
	}
	d := s.ssh
	if got := d.sources.len(); got != capacity {
		t.Fatalf("%d sources tracked, cap %d", got, capacity)
	}
	held := 0
	d.sources.each(func(_ netip.Addr, src *sshSource) {
		held += len(src.evidence.evs)
		if len(src.evidence.evs) == 0 {
			t.Fatal("a source lost its first evidence event")
		}
		if len(src.userTimes) > maxNames || len(src.users.names) > maxNames {
			t.Fatalf("%d user times, %d names kept, cap %d", len(src.userTimes), len(src.users.names), maxNames)
		}
	})
	if held != d.held {
		t.Fatalf("budget counts %d evidence events, sources hold %d", d.held, held)
	}
	if d.held > evidenceBudget+capacity {
		t.Fatalf("%d evidence events held, budget %d", d.held, evidenceBudget)
	}
	if reports == 0 || s.Stats().Evicted == 0 {
		t.Fatalf("%d brute-force reports, %d evictions", reports, s.Stats().Evicted)
	}
}
