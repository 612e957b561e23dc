package syncer

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/feedback"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/proposals"
)

// blocker is an executor that holds blocked addresses in memory: the
// engine's journal and rollback path are real, the host side is not.
type blocker struct{ held map[string]bool }

func (b *blocker) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}
func (b *blocker) Apply(_ context.Context, a *actions.Action) (string, error) {
	b.held[a.Target] = true
	return "blocked", nil
}
func (b *blocker) Revert(_ context.Context, a *actions.Action) error {
	delete(b.held, a.Target)
	return nil
}
func (b *blocker) InForce(_ context.Context, a *actions.Action) (bool, error) {
	return b.held[a.Target], nil
}

const attacker = "198.18.0.7"

// falsePositive sets up an incident with a block of attacker in force and
// gives the verdict; it returns the processor's result.
func falsePositive(t *testing.T, e *env, fx *feedback.Effects, b *blocker) feedback.Result {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	in := correlate.Incident{ID: 1, Opened: now, Updated: now, Status: "contained", Level: correlate.Contain, Score: 60,
		Entities: []signal.Entity{{Kind: signal.IP, Value: attacker}},
		Signals: []signal.Signal{{Time: now, Rule: "auth.ssh_brute_force", Stage: signal.InitialAccess, Weight: 60,
			Entities: []signal.Entity{{Kind: signal.IP, Value: attacker}}, Reason: "12 failed SSH logins in 2m from " + attacker}}}
	doc, _ := json.Marshal(in)
	b.held[attacker] = true
	err := e.st.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutIncident(ctx, state.IncidentRow{ID: 1, Opened: now, Updated: now, Status: "contained", Level: "contain", Score: 60, Summary: "s", Doc: doc}); err != nil {
			return err
		}
		_, err := tx.AddAction(ctx, state.ActionRow{Incident: 1, Kind: actions.BlockSource, Target: attacker, Reason: "brute force",
			Status: actions.StatusApplied, Created: now, Applied: now, Expires: now.Add(time.Hour)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := actions.New(actions.Config{Store: e.st, Executors: map[string]actions.Executor{actions.BlockSource: b}})
	if err != nil {
		t.Fatal(err)
	}
	proc := feedback.NewProcessor(feedback.Config{Store: e.st, Effects: fx, Hostname: host,
		Rollback: func(ctx context.Context, id int64, why string) error {
			_, err := eng.Rollback(ctx, id, why)
			return err
		}})
	row, err := feedback.Record(ctx, e.st, feedback.Request{Verdict: feedback.FalsePositive, Incident: 1, Note: "our monitoring host", Who: "alice"}, now)
	if err != nil {
		t.Fatal(err)
	}
	res, err := proc.Apply(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func signalFrom(ip string) signal.Signal {
	return signal.Signal{Rule: "auth.ssh_brute_force", Weight: 60, Entities: []signal.Entity{{Kind: signal.IP, Value: ip}}}
}

func (e *env) remoteGit(args ...string) (string, error) {
	return e.remote.GitErr(args...)
}

func TestFalsePositiveProposalMergedEndsSuppression(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	fx := feedback.NewEffects(nil)
	b := &blocker{held: map[string]bool{}}
	res := falsePositive(t, e, fx, b)

	// Relief at once: the block is gone, the pattern is suppressed.
	if b.held[attacker] || len(res.RolledBack) != 1 {
		t.Fatalf("block not rolled back: held=%v result=%+v", b.held, res)
	}
	a, _ := e.st.Action(ctx, res.RolledBack[0])
	if a.Status != actions.StatusRolledBack || !strings.Contains(a.Note, "false-positive") {
		t.Fatalf("journal: %+v", a)
	}
	if _, keep := fx.Signal(signalFrom(attacker)); keep {
		t.Fatal("suppressed pattern still passes the pipeline hook")
	}
	if _, keep := fx.Signal(signalFrom("198.18.0.8")); !keep {
		t.Fatal("another address is suppressed too")
	}
	if len(res.Proposals) != 1 {
		t.Fatalf("proposals: %+v", res)
	}

	// The sync cycle pushes the proposal branch on top of main.
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	branch := proposals.Branch(host, res.Proposals[0])
	tip, err := e.remoteGit("rev-parse", "--verify", "refs/heads/"+branch)
	if err != nil {
		t.Fatalf("no branch %s on the remote: %v", branch, err)
	}
	main := e.remote.Head(t, "main")
	diff, _ := e.remoteGit("diff", main, tip)
	if !strings.Contains(diff, "+++ b/whitelists/ips.cue") || !strings.Contains(diff, `cidr: "`+attacker+`"`) {
		t.Fatalf("diff does not add %s to whitelists/ips.cue:\n%s", attacker, diff)
	}
	msg, _ := e.remoteGit("log", "-1", "--format=%B", tip)
	for _, want := range []string{"false-positive", "our monitoring host", "Picket-Audit-Entry: ", "12 failed SSH logins"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if sig, _ := e.remoteGit("cat-file", "commit", tip); !strings.Contains(sig, "BEGIN SSH SIGNATURE") {
		t.Errorf("proposal commit is not signed:\n%s", sig)
	}
	// The proposed tree passes validate.
	e.work.Git(t, "fetch", "-q", e.remote.Dir, branch)
	check := filepath.Join(e.dir, "check")
	e.work.Git(t, "worktree", "add", "-q", check, "FETCH_HEAD")
	if err := schema.ValidateDir(check, host); err != nil {
		t.Fatalf("proposal does not validate: %v", err)
	}
	if ps, _ := proposals.List(ctx, e.st, proposals.StatusOpen); len(ps) != 1 {
		t.Fatalf("open proposals: %+v", ps)
	}

	// An operator merges it with a signed merge commit.
	e.work.Git(t, append(e.signArgs("admin")[:4], "merge", "-q", "--no-ff", "-S", "-m", "Merge proposal", "FETCH_HEAD")...)
	e.push(false, "main")
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	ps, _ := proposals.List(ctx, e.st)
	if len(ps) != 1 || ps[0].Status != proposals.StatusMerged {
		t.Fatalf("proposal not merged: %+v", ps)
	}
	if sups, _ := e.st.Suppressions(ctx, true); len(sups) != 0 {
		t.Fatalf("suppressions still hold after the merge: %+v", sups)
	}
	if err := fx.Load(ctx, e.st); err != nil {
		t.Fatal(err)
	}
	if _, keep := fx.Signal(signalFrom(attacker)); !keep {
		t.Fatal("suppression still applied after the merge")
	}
	// The applied config now trusts the address: the correlator holds its
	// incidents at observe, so the same pattern raises no action.
	last := e.applied[len(e.applied)-1]
	m, _ := whitelist.New(last.Whitelist)
	if !m.Trusted(netip.MustParseAddr(attacker)) {
		t.Fatal("applied policy does not trust the address")
	}
	c := correlate.New(last, func(en signal.Entity) bool {
		return en.Kind == signal.IP && m.Trusted(netip.MustParseAddr(en.Value))
	}, 10)
	s := signalFrom(attacker)
	s.Time, s.Stage = time.Now(), signal.InitialAccess
	s.Weight = 500
	ch, _ := c.Add(s)
	if ch.Incident.Level != correlate.Observe {
		t.Fatalf("same pattern after merge reaches %s", ch.Incident.Level)
	}
	if n := len(e.auditMessages(proposals.KindProposal)); n != 3 {
		t.Errorf("proposal audit entries: %d (%v)", n, e.auditMessages(proposals.KindProposal))
	}

	// The same verdict again: no second proposal, main has it already.
	b.held[attacker] = true
	row, err := feedback.Record(ctx, e.st, feedback.Request{Verdict: feedback.FalsePositive, Incident: 1, Who: "bob"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	proc := feedback.NewProcessor(feedback.Config{Store: e.st, Hostname: host})
	if _, err := proc.Apply(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	ps, _ = proposals.List(ctx, e.st)
	if len(ps) != 2 || ps[1].Status != proposals.StatusMerged || !strings.Contains(ps[1].Note, "already in") {
		t.Fatalf("second proposal for a merged pattern: %+v", ps)
	}
	if out, _ := e.remoteGit("for-each-ref", "refs/heads/proposals/"); strings.Count(out, "\n")+1 != 1 {
		t.Fatalf("remote proposal branches:\n%s", out)
	}
}

func TestProposalQueuedWhileOfflineReachesRemoteOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	res := falsePositive(t, e, feedback.NewEffects(nil), &blocker{held: map[string]bool{}})
	if _, err := e.once(); err == nil {
		t.Fatal("sync succeeded with the remote down")
	}
	if ps, _ := proposals.List(ctx, e.st, proposals.StatusQueued); len(ps) != 1 {
		t.Fatalf("not queued while offline: %+v", ps)
	}
	e.srv.Start(t)
	for range 3 {
		if _, err := e.once(); err != nil {
			t.Fatal(err)
		}
	}
	branch := proposals.Branch(host, res.Proposals[0])
	n, err := e.remoteGit("rev-list", "--count", "main..refs/heads/"+branch)
	if err != nil || n != "1" {
		t.Fatalf("commits on %s over main: %q %v", branch, n, err)
	}
	if ps, _ := proposals.List(ctx, e.st, proposals.StatusOpen); len(ps) != 1 {
		t.Fatalf("not open after the remote returned: %+v", ps)
	}
	if msgs := e.auditMessages(proposals.KindProposal); len(msgs) != 2 {
		t.Fatalf("audit: %v", msgs)
	}
	_ = os.Getpid
}
