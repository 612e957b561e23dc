package actions

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/state"
)

// batchHost is hostSet with the Batcher methods, counting the batches.
type batchHost struct {
	*hostSet
	mu      sync.Mutex
	batches int
	fail    map[string]bool // targets whose apply fails
}

func (b *batchHost) ApplyBatch(ctx context.Context, as []*Action) ([]string, []error) {
	b.mu.Lock()
	b.batches++
	b.mu.Unlock()
	notes, errs := make([]string, len(as)), make([]error, len(as))
	for i, a := range as {
		if b.fail[a.Target] {
			errs[i] = fmt.Errorf("netlink: element %s refused", a.Target)
			continue
		}
		notes[i], errs[i] = b.hostSet.Apply(ctx, a)
	}
	return notes, errs
}

func (b *batchHost) RevertBatch(ctx context.Context, as []*Action) []error {
	errs := make([]error, len(as))
	for i, a := range as {
		b.hostSet.mu.Lock()
		delete(b.hostSet.in, a.Target)
		b.hostSet.mu.Unlock()
		_ = i
	}
	return errs
}

func (b *batchHost) InForceBatch(ctx context.Context, as []*Action) ([]bool, error) {
	out := make([]bool, len(as))
	for i, a := range as {
		out[i] = b.has(a.Target)
	}
	return out, nil
}

func (b *batchHost) count() int {
	b.hostSet.mu.Lock()
	defer b.hostSet.mu.Unlock()
	return len(b.hostSet.in)
}

// queueRig is a rig whose BlockSource executor batches, with incidents
// in state for the plans to point at.
func queueRig(t *testing.T, incidents int) (*rig, *batchHost) {
	t.Helper()
	r := newRig(t)
	bh := &batchHost{hostSet: r.host, fail: map[string]bool{}}
	r.e.cfg.Executors[BlockSource] = bh
	ctx := context.Background()
	err := r.st.Update(ctx, func(tx *state.Tx) error {
		for i := 1; i <= incidents; i++ {
			if err := tx.PutIncident(ctx, state.IncidentRow{ID: int64(i), Opened: r.clk.t, Updated: r.clk.t, Status: "open", Level: "contain", Doc: []byte("{}")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, bh
}

func burst(n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Incident: int64(i%50 + 1), Kind: BlockSource, Target: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1), Reason: "ssh brute force"}
	}
	return reqs
}

func countStatus(t *testing.T, st *state.Store) map[string]int {
	t.Helper()
	all, err := List(context.Background(), st, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, a := range all {
		out[a.Status]++
	}
	return out
}

func queued(t *testing.T, st *state.Store) int {
	t.Helper()
	n, err := st.CountPendingPlans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueueBurst: 5,000 plans committed at once all become blocks, in a
// few batches, none failed or left in the queue, every plan pointing at
// its journal entry.
func TestQueueBurst(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 50)
	if err := r.e.Submit(ctx, burst(5000)...); err != nil {
		t.Fatal(err)
	}
	r.e.pump(ctx)
	if got := countStatus(t, r.st); got[StatusApplied] != 5000 || len(got) != 1 {
		t.Fatalf("journal: %v", got)
	}
	if bh.count() != 5000 {
		t.Fatalf("host holds %d", bh.count())
	}
	if bh.batches > 5 {
		t.Fatalf("%d executor batches for 5,000 blocks", bh.batches)
	}
	if n := queued(t, r.st); n != 0 {
		t.Fatalf("%d plans left in the queue", n)
	}
	plans, _ := r.st.Plans(ctx, 0)
	for _, p := range plans {
		if p.Taken <= 0 {
			t.Fatalf("plan %d not taken: %+v", p.ID, p)
		}
	}
	if ids := r.e.TakeApplied(); len(ids) != 5000 {
		t.Fatalf("%d applied notes", len(ids))
	}
}

// TestQueueDuplicatesRenew: the same address planned by several incidents
// is one journal entry; a later plan renews it rather than stacking.
func TestQueueDuplicatesRenew(t *testing.T) {
	ctx := context.Background()
	r, _ := queueRig(t, 3)
	one := Request{Incident: 1, Kind: BlockSource, Target: "198.18.0.1", Reason: "a"}
	two := one
	two.Incident = 2
	r.e.Submit(ctx, one, two)
	r.e.pump(ctx)
	first, _ := List(ctx, r.st, 0)
	if len(first) != 1 || first[0].Status != StatusApplied {
		t.Fatalf("journal: %+v", first)
	}
	r.clk.add(20 * time.Minute)
	three := one
	three.Incident = 3
	r.e.Submit(ctx, three)
	r.e.pump(ctx)
	after, _ := List(ctx, r.st, 0)
	if len(after) != 1 || !after[0].Expires.Equal(r.clk.t.Add(time.Hour)) {
		t.Fatalf("not renewed: %+v", after)
	}
	plans, _ := r.st.Plans(ctx, 0)
	for _, p := range plans {
		if p.Taken != after[0].ID {
			t.Fatalf("plan %d taken by %d, want %d", p.ID, p.Taken, after[0].ID)
		}
	}
	if !strings.Contains(r.audit(t), "renewed until") {
		t.Fatal("renewal not audited")
	}
}

// TestQueueBlockCap: past actions.max_blocks_per_hour new blocks are
// suppressed with the reason (audited once), failed ones do not count,
// and host actions keep their own cap (the breaker does not trip).
func TestQueueBlockCap(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 50)
	r.pol.Actions.MaxBlocksPerHour = 10
	reqs := burst(14)
	bh.fail[reqs[0].Target] = true
	r.e.Submit(ctx, reqs...)
	r.e.pump(ctx)
	// The first step counts the failing one against the step; the next
	// hour-window count does not.
	got := countStatus(t, r.st)
	if got[StatusApplied] != 9 || got[StatusFailed] != 1 || got[StatusSuppressed] != 4 {
		t.Fatalf("journal: %v", got)
	}
	r.e.Submit(ctx, Request{Incident: 1, Kind: BlockSource, Target: "198.18.9.9", Reason: "late"})
	r.e.pump(ctx)
	if got := countStatus(t, r.st); got[StatusApplied] != 10 {
		t.Fatalf("a failed block counted toward the cap: %v", got)
	}
	log := r.audit(t)
	if n := strings.Count(log, "hourly block cap reached"); n < 1 {
		t.Fatalf("cap not audited:\n%s", log)
	}
	if tripped, _ := r.e.tripped(ctx); tripped {
		t.Fatal("the block cap tripped the circuit breaker")
	}
	if a := r.doKind(t, DisableUser, "alice"); a.Status != StatusApplied {
		t.Fatalf("host action after the block cap: %+v", a)
	}
	// An hour later blocks resume.
	r.clk.add(61 * time.Minute)
	r.e.Submit(ctx, Request{Incident: 1, Kind: BlockSource, Target: "198.18.9.10", Reason: "later"})
	r.e.pump(ctx)
	last, _ := List(ctx, r.st, 1)
	if last[0].Status != StatusApplied {
		t.Fatalf("after the hour: %+v", last[0])
	}
}

// TestQueueLapsed: a plan older than its TTL (the agent was down) is not
// applied late; it is journaled as lapsed.
func TestQueueLapsed(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 1)
	r.e.Submit(ctx, Request{Incident: 1, Kind: BlockSource, Target: "198.18.0.1", TTL: time.Hour, Reason: "old"})
	r.clk.add(2 * time.Hour)
	r.e.pump(ctx)
	all, _ := List(ctx, r.st, 0)
	if len(all) != 1 || all[0].Status != StatusSuppressed || !strings.Contains(all[0].Note, "lapsed") || bh.count() != 0 {
		t.Fatalf("journal: %+v", all)
	}
}

// TestQueueCrashMidBatch: entries journaled as applying when the agent
// died are applied again at start (not undone: the attacker stays out),
// with their original expiry.
func TestQueueCrashMidBatch(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 1)
	exp := r.clk.t.Add(time.Hour)
	for i := range 3 {
		a := Action{Incident: 1, Kind: BlockSource, Target: fmt.Sprintf("198.18.0.%d", i+1), Status: StatusApplying, Created: r.clk.t, Expires: exp}
		if err := r.e.journalNew(ctx, &a, ""); err != nil {
			t.Fatal(err)
		}
	}
	r.clk.add(10 * time.Minute)
	if err := r.e.Reconcile(ctx, true); err != nil {
		t.Fatal(err)
	}
	all, _ := List(ctx, r.st, 0)
	for _, a := range all {
		if a.Status != StatusApplied || !a.Expires.Equal(exp) {
			t.Fatalf("after restart: %+v", a)
		}
	}
	if bh.count() != 3 {
		t.Fatalf("host holds %d", bh.count())
	}
}

// TestEmergencyStopFlag: with the flag set, the engine trips the breaker,
// undoes what it holds, re-asserts nothing and applies no new plan.
func TestEmergencyStopFlag(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 50)
	r.e.Submit(ctx, burst(20)...)
	r.e.pump(ctx)
	if bh.count() != 20 {
		t.Fatal("setup: blocks not applied")
	}
	stop := false
	r.e.cfg.Stopped = func() (string, bool) { return "emergency stop at 2026-11-26T12:00:00Z by root", stop }
	stop = true
	// The script already removed the blocks; the reconciler must not bring
	// them back.
	for k := range r.host.in {
		delete(r.host.in, k)
	}
	if err := r.e.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if bh.count() != 0 {
		t.Fatalf("re-asserted %d blocks after the emergency stop", bh.count())
	}
	if got := countStatus(t, r.st); got[StatusRolledBack] != 20 {
		t.Fatalf("journal: %v", got)
	}
	r.e.Submit(ctx, Request{Incident: 1, Kind: BlockSource, Target: "198.18.5.5", Reason: "new"})
	r.e.pump(ctx)
	if bh.count() != 0 || queued(t, r.st) != 0 {
		t.Fatal("a plan was applied (or left queued) during the emergency stop")
	}
	if !strings.Contains(r.audit(t), "emergency stop") {
		t.Fatal("not audited")
	}
	// Resume (which removes the flag): blocks work again.
	stop = false
	if ok, err := Resume(ctx, r.st, r.clk.t, "test"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	r.e.Submit(ctx, Request{Incident: 1, Kind: BlockSource, Target: "198.18.5.6", Reason: "after"})
	r.e.pump(ctx)
	if !bh.has("198.18.5.6") {
		t.Fatal("not applied after resume")
	}
}

// TestQueueHostCapReachedDoesNotStopBlocks: a host action that uses up
// actions.max_per_hour does not trip the breaker by itself (the next host
// action does), so blocks queued behind it in the same batch still apply.
func TestQueueHostCapReachedDoesNotStopBlocks(t *testing.T) {
	ctx := context.Background()
	r, bh := queueRig(t, 1)
	r.pol.Actions.MaxPerHour = 1
	r.e.Submit(ctx, Request{Incident: 1, Kind: DisableUser, Target: "alice", Reason: "a"},
		Request{Incident: 1, Kind: BlockSource, Target: "198.18.0.1", Reason: "b"})
	r.e.pump(ctx)
	if !bh.has("alice") || !bh.has("198.18.0.1") {
		t.Fatalf("host holds %v", r.host.in)
	}
	if tripped, _ := r.e.tripped(ctx); tripped {
		t.Fatal("breaker tripped before any action over the cap")
	}
}
