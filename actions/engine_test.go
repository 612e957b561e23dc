package actions

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions/health"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// hostSet stands in for the host's state in the engine's state-machine
// tests: a set of targets in force. The real executors have their own
// tests against nftables, /proc, shadow files and dockerd.
type hostSet struct {
	mu       sync.Mutex
	in       map[string]bool
	applies  int
	reverts  int
	failNext error
	one      bool
}

func newHost() *hostSet { return &hostSet{in: map[string]bool{}} }

func (h *hostSet) Snapshot(_ context.Context, a *Action) (json.RawMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return json.Marshal(map[string]bool{"was": h.in[a.Target]})
}

func (h *hostSet) Apply(_ context.Context, a *Action) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applies++
	if err := h.failNext; err != nil {
		h.failNext = nil
		return "", err
	}
	h.in[a.Target] = true
	return "set " + a.Target, nil
}

func (h *hostSet) Revert(_ context.Context, a *Action) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reverts++
	var was map[string]bool
	_ = json.Unmarshal(a.Undo, &was)
	if !was["was"] {
		delete(h.in, a.Target)
	}
	return nil
}

func (h *hostSet) InForce(_ context.Context, a *Action) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.in[a.Target], nil
}

func (h *hostSet) OneShot() bool { return h.one }

func (h *hostSet) has(t string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.in[t]
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time         { return c.t }
func (c *clock) add(d time.Duration)    { c.t = c.t.Add(d) }
func (c *clock) set(t time.Time) *clock { c.t = t; return c }

type rig struct {
	st    *state.Store
	e     *Engine
	host  *hostSet
	clk   *clock
	pol   *schema.Policy
	guard *Guard
	check *bool // the health check's current result
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	st, err := state.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{st: st, host: newHost(), clk: (&clock{}).set(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)), pol: p}
	ok := true
	r.check = &ok
	r.guard = &Guard{Admin: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Self: 1 << 30}
	r.e, err = New(Config{Store: st, Executors: map[string]Executor{BlockSource: r.host, DisableUser: r.host}, Now: r.clk.now,
		Health: func(context.Context) []health.Result {
			return []health.Result{{Name: "web", OK: *r.check, Detail: map[bool]string{false: "connection refused"}[*r.check]}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.e.SetPolicy(p, r.guard)
	return r
}

func (r *rig) do(t *testing.T, target string) Action {
	t.Helper()
	return r.doKind(t, BlockSource, target)
}

func (r *rig) doKind(t *testing.T, kind, target string) Action {
	t.Helper()
	a, err := r.e.Do(context.Background(), Request{Incident: 1, Kind: kind, Target: target, Reason: "ssh brute force"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (r *rig) audit(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := r.st.EachAudit(context.Background(), state.AuditFilter{}, func(e audit.Entry) error {
		b.WriteString(e.Kind + " " + e.Message + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestApplyThenExpire(t *testing.T) {
	r := newRig(t)
	a := r.do(t, "198.51.100.7")
	if a.Status != StatusApplied || !r.host.has("198.51.100.7") {
		t.Fatalf("apply: %+v", a)
	}
	if want := r.clk.t.Add(r.pol.Actions.BlockTTL.D()); !a.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", a.Expires, want)
	}
	r.clk.add(r.pol.Actions.BlockTTL.D() - time.Second)
	if err := r.e.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.host.has("198.51.100.7") {
		t.Fatal("expired a second early")
	}
	r.clk.add(time.Second)
	if err := r.e.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.host.has("198.51.100.7") {
		t.Fatal("still in force after its TTL")
	}
	got, _ := r.st.Action(context.Background(), a.ID)
	if got.Status != StatusExpired || got.Ended.IsZero() {
		t.Fatalf("journal: %+v", got)
	}
	log := r.audit(t)
	for _, want := range []string{"applied for 1h", "expired: expired after 1h"} {
		if !strings.Contains(log, want) {
			t.Errorf("audit lacks %q:\n%s", want, log)
		}
	}
}

func TestGuardsAndModes(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(r *rig)
		target string
		status string
		note   string
	}{
		{"admin whitelist", nil, "203.0.113.9", StatusRefused, "admin whitelist"},
		{"prefix overlapping admin", nil, "203.0.0.0/16", StatusRefused, "admin whitelist"},
		{"loopback", nil, "127.0.0.1", StatusRefused, "loopback"},
		{"everything", nil, "0.0.0.0/0", StatusRefused, "every address"},
		{"garbage", nil, "not-an-ip", StatusRefused, "not an address"},
		{"protected remote", func(r *rig) { r.guard.Protected = []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")} }, "192.0.2.10", StatusRefused, "protected"},
		{"learning", func(r *rig) { r.e.SetLearning(true) }, "198.51.100.7", StatusSuppressed, "learning period"},
		{"observe", func(r *rig) { r.pol.Mode = "observe" }, "198.51.100.7", StatusSuppressed, "observe mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			if c.setup != nil {
				c.setup(r)
			}
			a := r.do(t, c.target)
			if a.Status != c.status || !strings.Contains(a.Note, c.note) {
				t.Fatalf("got %s %q, want %s containing %q", a.Status, a.Note, c.status, c.note)
			}
			if r.host.applies != 0 {
				t.Fatal("the host was touched")
			}
			if log := r.audit(t); !strings.Contains(log, c.target) {
				t.Fatalf("not audited:\n%s", log)
			}
		})
	}
}

func TestCircuitBreaker(t *testing.T) {
	r := newRig(t)
	r.pol.Actions.MaxPerHour = 2
	// Blocks have their own cap: they do not count toward max_per_hour.
	for _, ip := range []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"} {
		if a := r.do(t, ip); a.Status != StatusApplied {
			t.Fatalf("block: %+v", a)
		}
	}
	// Neither do actions that never reached the host.
	r.host.failNext = errors.New("usermod failed")
	if a := r.doKind(t, DisableUser, "carol"); a.Status != StatusFailed {
		t.Fatalf("failing action: %+v", a)
	}
	r.doKind(t, DisableUser, "alice")
	r.clk.add(time.Minute)
	r.doKind(t, DisableUser, "bob")
	r.clk.add(time.Minute)
	a := r.doKind(t, DisableUser, "mallory")
	if a.Status != StatusSuppressed || r.host.has("mallory") {
		t.Fatalf("third action: %+v", a)
	}
	if !strings.Contains(r.audit(t), "circuit breaker tripped: 2 actions in the last hour") {
		t.Fatal("trip not audited")
	}
	// Still tripped an hour later: only an operator resets it.
	r.clk.add(2 * time.Hour)
	if a := r.doKind(t, DisableUser, "eve"); a.Status != StatusSuppressed {
		t.Fatalf("breaker reset itself: %+v", a)
	}
	ok, err := Resume(context.Background(), r.st, r.clk.t, "test")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if a := r.do(t, "198.51.100.5"); a.Status != StatusApplied {
		t.Fatalf("after resume: %+v", a)
	}
}

func TestHealthRollsBack(t *testing.T) {
	r := newRig(t)
	// The block itself breaks the check: rolled back at once.
	r.host.failNext = nil
	r.e.cfg.Executors[BlockSource] = &breaking{hostSet: r.host, ok: r.check}
	a := r.do(t, "198.51.100.7")
	if a.Status != StatusRolledBack || r.host.has("198.51.100.7") || !strings.Contains(a.Note, `health check failed after apply: "web"`) {
		t.Fatalf("got %+v", a)
	}
	// A check failing before the apply does not blame the action.
	r.e.cfg.Executors[BlockSource] = r.host
	*r.check = false
	if a := r.do(t, "198.51.100.8"); a.Status != StatusApplied {
		t.Fatalf("pre-failing check blamed the action: %+v", a)
	}
	// While in force: a check that passed at apply and fails later.
	*r.check = true
	b := r.do(t, "198.51.100.9")
	*r.check = false
	if err := r.e.HealthTick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := r.st.Action(context.Background(), b.ID)
	if got.Status != StatusRolledBack || r.host.has("198.51.100.9") || !r.host.has("198.51.100.8") {
		t.Fatalf("health tick: %+v", got)
	}
}

// breaking is an executor whose apply breaks the health check.
type breaking struct {
	*hostSet
	ok *bool
}

func (b *breaking) Apply(ctx context.Context, a *Action) (string, error) {
	*b.ok = false
	return b.hostSet.Apply(ctx, a)
}

func (b *breaking) Revert(ctx context.Context, a *Action) error {
	*b.ok = true
	return b.hostSet.Revert(ctx, a)
}

func TestApplyFailureUndoes(t *testing.T) {
	r := newRig(t)
	r.host.failNext = errors.New("netlink: operation not permitted")
	a := r.do(t, "198.51.100.7")
	if a.Status != StatusFailed || !strings.Contains(a.Note, "operation not permitted") || r.host.reverts != 1 {
		t.Fatalf("got %+v reverts=%d", a, r.host.reverts)
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	applied := r.do(t, "198.51.100.1")
	short := r.do(t, "198.51.100.2")
	// Crash mid-apply: journaled as applying, the host already changed.
	mid := Action{Incident: 2, Kind: BlockSource, Target: "198.51.100.3", Status: StatusApplying, Created: r.clk.t,
		Expires: r.clk.t.Add(time.Hour), Undo: json.RawMessage(`{"was":false}`)}
	if err := r.e.journalNew(ctx, &mid, ""); err != nil {
		t.Fatal(err)
	}
	r.host.in["198.51.100.3"] = true
	// The second block expires while the agent is down.
	s, _ := r.st.Action(ctx, short.ID)
	s.Expires = r.clk.t.Add(10 * time.Minute)
	r.st.Update(ctx, func(tx *state.Tx) error { return tx.PutAction(ctx, s) })
	// Someone flushed the first block.
	delete(r.host.in, "198.51.100.1")
	r.clk.add(20 * time.Minute)

	if err := r.e.Reconcile(ctx, true); err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{applied.ID: StatusApplied, short.ID: StatusExpired, mid.ID: StatusRolledBack}
	for id, st := range want {
		got, _ := r.st.Action(ctx, id)
		if got.Status != st {
			t.Errorf("action %d: %s, want %s (%s)", id, got.Status, st, got.Note)
		}
	}
	if !r.host.has("198.51.100.1") || r.host.has("198.51.100.2") || r.host.has("198.51.100.3") {
		t.Fatalf("host after reconcile: %v", r.host.in)
	}
	log := r.audit(t)
	for _, w := range []string{"re-asserted", "expired while the agent was not running", "stopped while applying"} {
		if !strings.Contains(log, w) {
			t.Errorf("audit lacks %q", w)
		}
	}
}

func TestRenewAndRollbackRequest(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	a := r.do(t, "198.51.100.7")
	r.clk.add(30 * time.Minute)
	if b := r.do(t, "198.51.100.7"); b.ID != 0 {
		t.Fatalf("second block stacked instead of renewing: %+v", b)
	}
	got, _ := r.st.Action(ctx, a.ID)
	if want := r.clk.t.Add(time.Hour); !got.Expires.Equal(want) {
		t.Fatalf("renewed until %v, want %v", got.Expires, want)
	}
	if _, err := RequestRollback(ctx, r.st, a.ID, "operator: false positive"); err != nil {
		t.Fatal(err)
	}
	if err := r.e.rollbackRequested(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = r.st.Action(ctx, a.ID)
	if got.Status != StatusRolledBack || r.host.has("198.51.100.7") || got.Note != "operator: false positive" {
		t.Fatalf("after rollback: %+v", got)
	}
	if _, err := RequestRollback(ctx, r.st, a.ID, "again"); !errors.Is(err, ErrNotInForce) {
		t.Fatalf("second rollback: %v", err)
	}
}

func TestOneShot(t *testing.T) {
	r := newRig(t)
	r.host.one = true
	a := r.do(t, "198.51.100.7")
	if a.Status != StatusDone || !a.Expires.IsZero() {
		t.Fatalf("one-shot: %+v", a)
	}
}
