package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/internal/gittest"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

const host = "web1"

// env is a config repository served by the real git http-backend, a local
// trust root, and a syncer with its own state, all in temp directories.
type env struct {
	t        *testing.T
	work     *gittest.Repo // the operators' clone
	remote   *gittest.Repo // bare, served over HTTP
	srv      *gittest.Server
	keys     map[string]string // name -> private key path
	pubs     map[string]string // name -> public key line
	dir      string
	trustDir string
	stateDir string
	boot     schema.Bootstrap
	st       *state.Store
	s        *Syncer
	applied  []*schema.Policy
}

func keygen(t *testing.T, dir, name string) (string, string) {
	kg := integration.Binary(t, "ssh-keygen")
	path := filepath.Join(dir, name)
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return path, f[0] + " " + f[1]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), keys: map[string]string{}, pubs: map[string]string{}}
	for _, k := range []string{"admin", "stranger", "expired", "newcomer"} {
		e.keys[k], e.pubs[k] = keygen(t, e.dir, k)
	}
	e.trustDir = filepath.Join(e.dir, "trust")
	os.MkdirAll(e.trustDir, 0o700)
	signers := fmt.Sprintf("admin@example.com namespaces=\"git\" %s\nold@example.com valid-before=\"20200101\" %s\n", e.pubs["admin"], e.pubs["expired"])
	os.WriteFile(filepath.Join(e.trustDir, "allowed_signers"), []byte(signers), 0o600)

	e.work = gittest.NewRepo(t)
	files := map[string]string{}
	src := "../../examples/config-repo"
	for _, f := range []string{"picket.cue", "whitelists/admin.cue", "whitelists/users.cue", "hosts/web1.cue"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	e.commit(files, "initial policy", "admin")
	root := filepath.Join(e.dir, "srv")
	e.remote = gittest.NewBareRepo(t, filepath.Join(root, "config.git"))
	e.push(false, "main")
	e.srv = gittest.ServeHTTP(t, root, gittest.ServerOptions{})

	e.stateDir = filepath.Join(e.dir, "state")
	b := schema.BootstrapDefault()
	b.Hostname = host
	b.Repository.URL = e.srv.URL("config.git")
	b.Repository.HostKey = filepath.Join(e.dir, "host_key")
	b.Repository.BatchSize = 100
	b.TrustDir = e.trustDir
	b.StateDir = e.stateDir
	b.Credentials = filepath.Join(e.dir, "none")
	e.boot = b
	st, err := state.Open(context.Background(), e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(func() { e.st.Close() })
	e.restart()
	return e
}

// restart builds a new Syncer on the same state and clone: what a restart
// of the agent does.
func (e *env) restart() {
	e.t.Helper()
	s, err := New(Config{Hostname: host, Bootstrap: e.boot, StateDir: e.stateDir, Store: e.st,
		StatusJSON: func() []byte { return []byte(`{"state":"running"}` + "\n") },
		Apply: func(_ context.Context, p *schema.Policy, rev, signer string) error {
			e.applied = append(e.applied, p)
			return nil
		}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
}

func (e *env) signArgs(key string) []string {
	if key == "" {
		return nil
	}
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + e.keys[key], "-S"}
}

func (e *env) commit(files map[string]string, msg, key string) string {
	e.t.Helper()
	return e.work.Commit(e.t, files, msg, e.signArgs(key)...)
}

func (e *env) push(force bool, refspec string) {
	e.t.Helper()
	args := []string{"push", "-q"}
	if force {
		args = append(args, "-f")
	}
	e.work.Git(e.t, append(args, e.remote.Dir, refspec)...)
}

func (e *env) policyFile() string {
	b, err := os.ReadFile(filepath.Join(e.work.Dir, "picket.cue"))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) once() (Report, error) {
	e.t.Helper()
	return e.s.Once(context.Background())
}

func (e *env) auditMessages(kind string) []string {
	var out []string
	e.st.EachAudit(context.Background(), state.AuditFilter{Kind: kind}, func(a audit.Entry) error {
		out = append(out, a.Message)
		return nil
	})
	return out
}

func TestSignedChangeApplied(t *testing.T) {
	e := newEnv(t)
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	if len(e.applied) != 1 || e.s.Status().AppliedRevision != e.work.Head(t, "main") {
		t.Fatalf("initial config not applied: %d, %+v", len(e.applied), e.s.Status())
	}
	pol := strings.Replace(e.policyFile(), "contain: 50", "contain: 45", 1)
	rev := e.commit(map[string]string{"picket.cue": pol}, "lower contain to 45", "admin")
	e.push(false, "main")
	rep, err := e.once()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != rev || len(e.applied) != 2 || e.applied[1].Levels.Contain != 45 {
		t.Fatalf("signed change not applied: %+v, %d", rep, len(e.applied))
	}
	msgs := e.auditMessages(audit.KindConfigApplied)
	last := msgs[len(msgs)-1]
	if !strings.Contains(last, rev[:12]) || !strings.Contains(last, "signed by admin@example.com") {
		t.Errorf("audit: %q", last)
	}
	var ap Applied
	if ok, _ := e.st.MetaJSON(context.Background(), MetaApplied, &ap); !ok || ap.Revision != rev {
		t.Errorf("applied config not recorded: %+v", ap)
	}
	// Nothing new: nothing applied again.
	if _, err := e.once(); err != nil || len(e.applied) != 2 {
		t.Errorf("idempotent cycle: %v, %d applies", err, len(e.applied))
	}
}

func TestRejections(t *testing.T) {
	cases := []struct {
		name, kind string
		change     func(e *env)
	}{
		{"unsigned commit", "unsigned", func(e *env) {
			e.commit(map[string]string{"picket.cue": e.policyFile() + "\n// unsigned\n"}, "unsigned", "")
			e.push(false, "main")
		}},
		{"untrusted key", "untrusted", func(e *env) {
			e.commit(map[string]string{"picket.cue": e.policyFile() + "\n// stranger\n"}, "stranger", "stranger")
			e.push(false, "main")
		}},
		{"wrong namespace", "wrong-namespace", func(e *env) {
			e.commit(map[string]string{"picket.cue": e.policyFile() + "\n// ns\n"}, "ns", "")
			signNamespace(e, "file")
			e.push(false, "main")
		}},
		{"key outside valid-before", "outside-validity", func(e *env) {
			e.commit(map[string]string{"picket.cue": e.policyFile() + "\n// old key\n"}, "expired key", "expired")
			e.push(false, "main")
		}},
		{"force-push to an older revision", "rollback", func(e *env) {
			first := e.work.Head(e.t, "main~1")
			e.push(true, first+":refs/heads/main")
		}},
		{"signed invalid CUE", "invalid", func(e *env) {
			e.commit(map[string]string{"picket.cue": e.policyFile() + "\nlevels: contain: \"high\"\n"}, "invalid", "admin")
			e.push(false, "main")
		}},
		{"trust change signed only by the key it adds", "trust-change", func(e *env) {
			e.commit(map[string]string{"trust/allowed_signers": "new@example.com " + e.pubs["newcomer"] + "\n"}, "add me", "newcomer")
			e.push(false, "main")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			// A second signed revision, so "older revision" exists.
			e.commit(map[string]string{"whitelists/extra.cue": "whitelist: ips: monitor: cidr: \"192.0.2.10\"\n"}, "monitor", "admin")
			e.push(false, "main")
			if _, err := e.once(); err != nil {
				t.Fatal(err)
			}
			good := e.s.Status().AppliedRevision
			c.change(e)
			rep, err := e.once()
			if !errors.Is(err, ErrRejected) || rep.Rejected == nil {
				t.Fatalf("not rejected: %+v %v", rep, err)
			}
			if rep.Rejected.Kind != c.kind {
				t.Errorf("kind %q, want %q (%s)", rep.Rejected.Kind, c.kind, rep.Rejected.Reason)
			}
			if e.s.Status().AppliedRevision != good || len(e.applied) != 1 {
				t.Errorf("previous config not kept: %s, %d applies", e.s.Status().AppliedRevision, len(e.applied))
			}
			rej := e.auditMessages(audit.KindConfigRejected)
			if len(rej) != 1 || !strings.Contains(rej[0], rep.Rejected.Reason) {
				t.Errorf("audit %q", rej)
			}
			// The same rejection is not audited again every cycle.
			e.once()
			if n := len(e.auditMessages(audit.KindConfigRejected)); n != 1 {
				t.Errorf("rejection audited %d times", n)
			}
			if s := e.s.Status(); s.LastRejection == nil || s.LastRejection.Kind != c.kind {
				t.Errorf("status: %+v", s.LastRejection)
			}
		})
	}
}

// signNamespace re-signs HEAD (unsigned) with the admin key under another
// SSH signature namespace than git's.
func signNamespace(e *env, ns string) {
	t := e.t
	payload := e.work.Git(t, "cat-file", "commit", "HEAD") + "\n"
	f := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(f, []byte(payload), 0o644)
	if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-n", ns, "-f", e.keys["admin"], f).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v %s", err, out)
	}
	sig, _ := os.ReadFile(f + ".sig")
	hdr, body, _ := strings.Cut(payload, "\n\n")
	obj := hdr + "\ngpgsig " + strings.ReplaceAll(strings.TrimSpace(string(sig)), "\n", "\n ") + "\n\n" + body
	h, err := e.work.GitInput([]byte(obj), "hash-object", "-t", "commit", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	e.work.Git(t, "update-ref", "refs/heads/main", strings.TrimSpace(h))
}

// addEntries appends n audit entries, as the agent would.
func (e *env) addEntries(from, n int) {
	e.t.Helper()
	ctx := context.Background()
	err := e.st.Update(ctx, func(tx *state.Tx) error {
		for i := from; i < from+n; i++ {
			if _, err := tx.AppendAudit(ctx, audit.Entry{Time: time.Now(), Kind: "test", Message: fmt.Sprintf("test entry %d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// hostBranchEntries reads every audit line on hosts/web1 in the remote.
func (e *env) hostBranchEntries() []audit.Entry {
	e.t.Helper()
	files := e.remote.Git(e.t, "ls-tree", "-r", "--name-only", "hosts/"+host, "audit/")
	var out []audit.Entry
	for _, f := range strings.Fields(files) {
		if !strings.HasSuffix(f, ".jsonl") || strings.HasSuffix(f, "checkpoints.jsonl") {
			continue
		}
		for _, line := range strings.Split(e.remote.Git(e.t, "show", "hosts/"+host+":"+f), "\n") {
			if line == "" {
				continue
			}
			var a audit.Entry
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				e.t.Fatalf("%s: %v: %q", f, err, line)
			}
			out = append(out, a)
		}
	}
	return out
}

func (e *env) allowedSignersForHost() string {
	f := filepath.Join(e.dir, "host_signers")
	os.WriteFile(f, []byte(e.s.HostKey().AllowedSignersLine("picket@"+host)+"\n"), 0o644)
	return f
}

// TestOfflineThousandEntries: with the remote down while 1,000 entries are
// produced and one restart in the middle, every entry reaches the host
// branch exactly once when it returns, in signed commits.
func TestOfflineThousandEntries(t *testing.T) {
	e := newEnv(t)
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	e.addEntries(0, 500)
	if _, err := e.once(); err == nil {
		t.Fatal("sync succeeded with the remote down")
	}
	st := e.s.Status()
	if st.OfflineSince.IsZero() || st.Queued < 500 {
		t.Fatalf("offline status: %+v", st)
	}
	e.restart()
	e.addEntries(500, 500)
	if _, err := e.once(); err == nil {
		t.Fatal("sync succeeded with the remote down")
	}
	var saved Status
	e.st.MetaJSON(context.Background(), MetaSync, &saved)
	if saved.OfflineSince.IsZero() || saved.Queued < 1000 || !saved.OfflineSince.Equal(st.OfflineSince) {
		t.Fatalf("offline status after restart: %+v (first offline %s)", saved, st.OfflineSince)
	}
	e.srv.Start(t)
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	if s := e.s.Status(); !s.OfflineSince.IsZero() || s.Queued != 0 {
		t.Fatalf("still offline after the remote returned: %+v", s)
	}
	seen := map[int64]int{}
	tests := map[string]int{}
	for _, a := range e.hostBranchEntries() {
		seen[a.Seq]++
		if a.Kind == "test" {
			tests[a.Message]++
		}
	}
	if len(tests) != 1000 {
		t.Fatalf("%d distinct test entries on the host branch, want 1000", len(tests))
	}
	for m, n := range tests {
		if n != 1 {
			t.Errorf("%q appears %d times", m, n)
		}
	}
	n, _ := e.st.AuditCount(context.Background())
	for seq := int64(1); seq <= n; seq++ {
		if seen[seq] != 1 {
			t.Errorf("entry %d appears %d times on the host branch", seq, seen[seq])
		}
	}
	// Every agent commit verifies with the real git.
	sigs := e.remote.Git(t, "-c", "gpg.ssh.allowedSignersFile="+e.allowedSignersForHost(), "log", "--format=%G?", "hosts/"+host)
	for i, g := range strings.Fields(sigs) {
		if g != "G" {
			t.Errorf("commit %d on hosts/%s: signature status %q, want G", i, host, g)
		}
	}
	out := e.remote.Git(t, "-c", "gpg.ssh.allowedSignersFile="+e.allowedSignersForHost(), "log", "--show-signature", "-1", "hosts/"+host)
	if !strings.Contains(out, `Good "git" signature for picket@web1`) {
		t.Errorf("git log --show-signature:\n%s", out)
	}
}

// TestHostBranchDiverged: someone else moved hosts/web1; the agent keeps
// that history, re-applies its entries on top, and audits it.
func TestHostBranchDiverged(t *testing.T) {
	e := newEnv(t)
	e.addEntries(0, 10)
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	other := gittest.NewRepo(t)
	other.Git(t, "fetch", "-q", e.remote.Dir, "hosts/"+host+":hosts/"+host)
	other.Git(t, "checkout", "-q", "hosts/"+host)
	other.Commit(t, map[string]string{"NOTES.md": "investigated\n"}, "operator note")
	other.Git(t, "push", "-q", e.remote.Dir, "hosts/"+host)

	e.addEntries(10, 10)
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	if got := e.remote.Git(t, "show", "hosts/"+host+":NOTES.md"); got != "investigated" {
		t.Errorf("the operator's commit was lost: %q", got)
	}
	tests := 0
	for _, a := range e.hostBranchEntries() {
		if a.Kind == "test" {
			tests++
		}
	}
	if tests != 20 {
		t.Errorf("%d test entries on the branch, want 20", tests)
	}
	if len(e.auditMessages(KindHostBranchRebased)) != 1 {
		t.Errorf("divergence not audited")
	}
}

// TestBaselineOnHostBranch: a promoted baseline version is written to the
// host branch as baseline/<kind>.json with the batch of its audit entry,
// once; a later version updates the files.
func TestBaselineOnHostBranch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := baseline.NewModel(baseline.DefaultCaps())
	m.Learn(&event.Event{Time: time.Now(), Kind: event.AuthSuccess, User: "alice", Method: "publickey", Addr: netip.MustParseAddr("192.0.2.7")})
	vs, _ := baseline.NewVersions(nil)
	promote := func(reason string) {
		vs.Promote(m, reason, time.Now())
		if err := e.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, baseline.MetaVersions, vs.All()) }); err != nil {
			t.Fatal(err)
		}
		e.addEntries(0, 1)
	}
	promote("end of learning period")
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	auth := e.remote.Git(t, "show", "hosts/"+host+":baseline/auth.json")
	if !strings.Contains(auth, "alice") || !strings.Contains(auth, "192.0.2.0/24") {
		t.Fatalf("baseline/auth.json: %s", auth)
	}
	if e.s.Status().BaselineVersion != 1 {
		t.Fatalf("baseline version %d", e.s.Status().BaselineVersion)
	}
	m.Learn(&event.Event{Time: time.Now(), Kind: event.AuthSuccess, User: "bob", Method: "password", Addr: netip.MustParseAddr("198.51.100.7")})
	promote("relearn")
	if _, err := e.once(); err != nil {
		t.Fatal(err)
	}
	if auth := e.remote.Git(t, "show", "hosts/"+host+":baseline/auth.json"); !strings.Contains(auth, "bob") {
		t.Fatalf("version 2 not written: %s", auth)
	}
	log := e.remote.Git(t, "log", "--format=%H", "hosts/"+host, "--", "baseline/")
	if n := len(strings.Fields(log)); n != 2 {
		t.Errorf("%d commits touch baseline/, want 2 (one per version)", n)
	}
}
