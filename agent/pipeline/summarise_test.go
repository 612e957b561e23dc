package pipeline

import (
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
)

// More brute-forcing addresses than correlate.MaxWhole, interleaved as a
// botnet's: each gets one incident and one block plan however often it is
// re-reported, at most MaxWhole incidents stay whole, and what the batches
// carry, stored the way agent.WriteBatch stores it (a summarised
// incident's signals appended), still tells every incident's story. A
// login from an early address joins its summarised incident.
func TestSummarisedIncidentsKeepIdentity(t *testing.T) {
	const addrs = 1500
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	evs := churnEvents(t, addrs, 12, start)
	pl, err := New(defaultPolicy(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64][]signal.Signal{}
	blocks := map[string]int{}
	take := func() {
		b := pl.Take()
		for _, in := range b.Incidents {
			if in.Summarised > 0 {
				stored[in.ID] = append(stored[in.ID], in.Signals...)
			} else {
				stored[in.ID] = append([]signal.Signal(nil), in.Signals...)
			}
		}
		for _, p := range b.Plans {
			if p.Action == respond.BlockSource {
				blocks[p.Target]++
			}
		}
		if open, whole := pl.OpenCount(); whole > correlate.MaxWhole || open > addrs {
			t.Fatalf("%d open, %d whole", open, whole)
		}
	}
	for i := range evs {
		pl.Process(&evs[i])
		if i%1024 == 1023 {
			take()
		}
	}
	take()
	if open, whole := pl.OpenCount(); open != addrs || whole != correlate.MaxWhole {
		t.Fatalf("%d open (want %d), %d whole (want %d)", open, addrs, whole, correlate.MaxWhole)
	}
	if len(blocks) != addrs || len(stored) != addrs {
		t.Fatalf("%d addresses with block plans, %d incidents stored", len(blocks), len(stored))
	}
	for ip, n := range blocks {
		if n != 1 {
			t.Fatalf("%s: %d block plans", ip, n)
		}
	}
	for id, sigs := range stored {
		if len(sigs) == 0 || sigs[0].Rule != detect.RuleSSHBruteForce && sigs[0].Rule != detect.RulePasswordSpray {
			t.Fatalf("incident %d: stored story %v", id, sigs)
		}
	}
	// Address 0 (198.18.0.0) was summarised long ago.
	first := evs[0]
	login := event.Event{Time: evs[len(evs)-1].Time.Add(time.Second), Kind: event.AuthSuccess, Addr: first.Addr, User: "deploy", Method: "password",
		Line: "Accepted password for deploy from " + first.Addr.String() + " port 2 ssh2"}
	pl.Process(&login)
	b := pl.Take()
	if len(b.Incidents) != 1 || b.Incidents[0].ID != 1 || b.Incidents[0].Summarised == 0 || b.Incidents[0].Level < correlate.Aggressive {
		t.Fatalf("login joined %+v", b.Incidents)
	}
	for _, p := range b.Plans {
		if p.Action == respond.BlockSource {
			t.Fatalf("block planned again: %+v", p)
		}
	}
}
