package hostbranch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/sync/hostkey"
)

// env is a host key, its allowed_signers file and the git CLI.
type env struct {
	t       *testing.T
	gitBin  string
	dir     string
	key     *hostkey.Key
	allowed string
	sig     Signature
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, gitBin: integration.Binary(t, "git"), dir: t.TempDir()}
	integration.Binary(t, "ssh-keygen") // git verifies SSH signatures with it
	k, _, err := hostkey.LoadOrCreate(filepath.Join(e.dir, "hostkey"))
	if err != nil {
		t.Fatal(err)
	}
	e.key = k
	e.allowed = filepath.Join(e.dir, "allowed_signers")
	if err := os.WriteFile(e.allowed, []byte(k.AllowedSignersLine("picket@web1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.sig = Signature{Name: "picket web1", Email: "picket@web1", When: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	return e
}

// git runs the git CLI isolated from the user's configuration.
func (e *env) git(dir string, args ...string) (string, error) {
	e.t.Helper()
	full := append([]string{"-C", dir, "-c", "gpg.ssh.allowedSignersFile=" + e.allowed,
		"-c", "user.name=Operator", "-c", "user.email=ops@example.com", "-c", "commit.gpgsign=false",
		"-c", "init.defaultBranch=main"}, args...)
	cmd := exec.Command(e.gitBin, full...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "HOME="+e.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) mustGit(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.git(dir, args...)
	if err != nil {
		e.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) bare(name string) (string, *git.Repository) {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	e.mustGit(e.dir, "init", "--bare", "-q", dir)
	repo, err := git.PlainOpen(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return dir, repo
}

// commit applies b on the branch's tip and advances the branch.
func (e *env) commit(repo *git.Repository, b Batch) plumbing.Hash {
	e.t.Helper()
	ref, err := RefName("web1")
	if err != nil {
		e.t.Fatal(err)
	}
	parent, err := Tip(repo, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	h, err := Commit(repo, parent, b, e.sig, e.key.GitSigner())
	if err != nil {
		e.t.Fatal(err)
	}
	if h != parent {
		if err := Advance(repo, ref, parent, h); err != nil {
			e.t.Fatal(err)
		}
	}
	return h
}

// checkSignatures asserts that every commit on rev written by the host
// carries a good signature according to the real git, and returns how many
// commits rev has.
func (e *env) checkSignatures(dir, rev string, unsigned int) {
	e.t.Helper()
	total := strings.TrimSpace(e.mustGit(dir, "rev-list", "--count", rev))
	log := e.mustGit(dir, "log", "--show-signature", rev)
	good := strings.Count(log, `Good "git" signature for picket@web1 with ED25519 key `+e.key.Fingerprint())
	if fmt.Sprint(good+unsigned) != total {
		e.t.Fatalf("%d good signatures + %d unsigned for %s commits:\n%s", good, unsigned, total, log)
	}
	for _, line := range strings.Split(strings.TrimSpace(e.mustGit(dir, "log", "--format=%G? %an %H", rev)), "\n") {
		if strings.Contains(line, "picket web1") && !strings.HasPrefix(line, "G ") {
			e.t.Errorf("host commit not verified by git: %s", line)
		}
	}
	e.mustGit(dir, "verify-commit", rev)
	e.mustGit(dir, "fsck", "--strict", "--no-dangling")
}

// chain builds n sealed entries after prev, one second apart from start.
func chain(prev audit.Entry, n int, start time.Time, kinds ...string) []audit.Entry {
	var out []audit.Entry
	for i := 0; i < n; i++ {
		kind := audit.KindSensor
		if len(kinds) > 0 {
			kind = kinds[i%len(kinds)]
		}
		prev = audit.Seal(prev.Seq, prev.Hash, audit.Entry{
			Time: start.Add(time.Duration(i) * time.Second), Kind: kind,
			Message: fmt.Sprintf("entry %d", prev.Seq+1),
			Data:    json.RawMessage(`{"hash":"not-the-entry-hash","why":"a -> b & <c>"}`),
		})
		out = append(out, prev)
	}
	return out
}

// readDay returns the entries of a day file on rev, checking each line.
func (e *env) readDay(dir, rev, path string) []audit.Entry {
	e.t.Helper()
	out := e.mustGit(dir, "show", rev+":"+path)
	var entries []audit.Entry
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var en audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			e.t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		if en.ComputeHash() != en.Hash {
			e.t.Fatalf("%s: entry %d does not match its hash after the round trip", path, en.Seq)
		}
		entries = append(entries, en)
	}
	return entries
}

func seqs(es []audit.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprint(e.Seq))
	}
	return strings.Join(s, ",")
}

func TestCommitBatchesInBareRepo(t *testing.T) {
	e := newEnv(t)
	dir, repo := e.bare("local.git")
	day := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

	all := chain(audit.Entry{}, 6, day, audit.KindAgentStart, audit.KindIncident, audit.KindPlan)
	b1 := Batch{Host: "web1", Status: []byte(`{"v":1}` + "\n"),
		Baselines: map[string][]byte{"process": []byte(`{"p":1}`)}, Audit: all[:3]}
	c1 := e.commit(repo, b1)

	cp := []byte(`{"host":"web1","count":6,"seq":6,"head":"` + all[5].Hash + `","signature":"x"}`)
	b2 := Batch{Host: "web1", Baselines: map[string][]byte{"network": []byte(`{"n":1}`)},
		Audit: all[3:6], Checkpoints: [][]byte{cp}, Message: "interval flush"}
	c2 := e.commit(repo, b2)

	// Day boundary, and a zone that is still the 25th in UTC.
	more := chain(all[5], 1, time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC))
	more = append(more, chain(more[0], 1, time.Date(2026, 11, 26, 0, 0, 1, 0, time.UTC))...)
	east := time.FixedZone("EET", 2*3600)
	more = append(more, chain(more[1], 1, time.Date(2026, 11, 26, 1, 30, 0, 0, east))...)
	b3 := Batch{Host: "web1", Status: []byte(`{"v":2}` + "\n"), Audit: more}
	c3 := e.commit(repo, b3)
	if c1 == c2 || c2 == c3 {
		t.Fatal("a batch produced no commit")
	}

	const rev = "hosts/web1"
	e.checkSignatures(dir, rev, 0)
	if got := strings.TrimSpace(e.mustGit(dir, "rev-list", "--max-parents=0", rev)); got != c1.String() {
		t.Errorf("root commit %s, want the orphan first commit %s", got, c1)
	}
	if got := seqs(e.readDay(dir, rev, "audit/2026/11/25.jsonl")); got != "1,2,3,4,5,6,7,9" {
		t.Errorf("25.jsonl seqs %s", got)
	}
	if got := seqs(e.readDay(dir, rev, "audit/2026/11/26.jsonl")); got != "8" {
		t.Errorf("26.jsonl seqs %s", got)
	}
	if got := e.mustGit(dir, "show", rev+":status.json"); got != `{"v":2}`+"\n" {
		t.Errorf("status.json = %q", got)
	}
	if got := e.mustGit(dir, "show", rev+":baseline/process.json"); got != `{"p":1}` {
		t.Errorf("baseline/process.json = %q", got)
	}
	if got := e.mustGit(dir, "show", rev+":baseline/network.json"); got != `{"n":1}` {
		t.Errorf("baseline/network.json = %q", got)
	}
	if got := e.mustGit(dir, "show", rev+":audit/checkpoints.jsonl"); got != string(cp)+"\n" {
		t.Errorf("checkpoints.jsonl = %q", got)
	}
	subj := e.mustGit(dir, "log", "--format=%s", rev)
	for _, want := range []string{
		"picket web1: 3 audit entries (seq 1-3), status, baseline process",
		"picket web1: 3 audit entries (seq 4-6), 1 checkpoint, baseline network",
		"picket web1: 3 audit entries (seq 7-9), status",
	} {
		if !strings.Contains(subj, want) {
			t.Errorf("subjects lack %q:\n%s", want, subj)
		}
	}
	if body := e.mustGit(dir, "log", "-1", "--format=%b", c2.String()); !strings.Contains(body, "Audit kinds: agent.start 1, incident 1, plan 1.") || !strings.Contains(body, "interval flush") {
		t.Errorf("body of the second commit:\n%s", body)
	}

	// Applying a batch again changes nothing and writes no commit.
	for i, b := range []Batch{b2, b3} {
		if h := e.commit(repo, b); h != c3 {
			t.Errorf("re-applying batch %d made commit %s", i+2, h)
		}
	}
	// A batch overlapping what is there adds only the new entries.
	next := chain(more[2], 2, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	c4 := e.commit(repo, Batch{Host: "web1", Audit: append(append([]audit.Entry{}, all[4:]...), next...)})
	if got := seqs(e.readDay(dir, rev, "audit/2026/11/26.jsonl")); got != "8,10,11" {
		t.Errorf("26.jsonl after overlap: %s", got)
	}
	if got := seqs(e.readDay(dir, rev, "audit/2026/11/25.jsonl")); got != "1,2,3,4,5,6,7,9" {
		t.Errorf("25.jsonl after overlap: %s", got)
	}
	msg := e.mustGit(dir, "log", "-1", "--format=%B", c4.String())
	if !strings.HasPrefix(msg, "picket web1: 2 audit entries (seq 10-11)\n") || !strings.Contains(msg, "2 audit entries were already on the branch") {
		t.Errorf("overlap commit message:\n%s", msg)
	}
	e.checkSignatures(dir, rev, 0)

	// An old batch applied again only brings back what it replaces.
	c5 := e.commit(repo, b1)
	if got := e.mustGit(dir, "log", "-1", "--format=%s", c5.String()); got != "picket web1: status\n" {
		t.Errorf("re-applied first batch: %q", got)
	}
	if got := seqs(e.readDay(dir, rev, "audit/2026/11/25.jsonl")); got != "1,2,3,4,5,6,7,9" {
		t.Errorf("25.jsonl after re-applying the first batch: %s", got)
	}

	// The exported lines are the chain: it verifies across day files.
	exported := append(e.readDay(dir, rev, "audit/2026/11/25.jsonl"), e.readDay(dir, rev, "audit/2026/11/26.jsonl")...)
	sort.Slice(exported, func(i, j int) bool { return exported[i].Seq < exported[j].Seq })
	var v audit.Verifier
	for _, en := range exported {
		if err := v.Next(en); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Head(next[1].Seq, next[1].Hash); err != nil {
		t.Fatal(err)
	}
}

func TestCommitRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	_, repo := e.bare("r.git")
	signer := e.key.GitSigner()
	good := chain(audit.Entry{}, 1, time.Now())
	// Seal compacts Data; an entry whose Data was altered afterwards (or
	// came from elsewhere) must still be refused.
	loose := audit.Seal(0, "", audit.Entry{Time: time.Now(), Kind: "x", Data: json.RawMessage(`{"a":1}`)})
	loose.Data = json.RawMessage(`{"a": 1}`)
	for name, b := range map[string]Batch{
		"unsealed entry":       {Audit: []audit.Entry{{Time: time.Now(), Kind: "x"}}},
		"entry without time":   {Audit: []audit.Entry{{Seq: 1, Kind: "x"}}},
		"baseline path":        {Baselines: map[string][]byte{"../x": []byte("{}")}},
		"baseline subdir":      {Baselines: map[string][]byte{"a/b": []byte("{}")}},
		"non-compact data":     {Audit: []audit.Entry{loose}},
		"multiline checkpoint": {Checkpoints: [][]byte{[]byte("{}\n{}")}, Audit: good},
	} {
		if _, err := Commit(repo, plumbing.ZeroHash, b, e.sig, signer); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Commit(repo, plumbing.ZeroHash, Batch{Audit: good}, e.sig, nil); err == nil {
		t.Error("unsigned commit accepted")
	}
	for _, h := range []string{"", "a/b", "..", "x..y", "web1.lock", "-x", "a b"} {
		if _, err := RefName(h); err == nil {
			t.Errorf("RefName(%q) accepted", h)
		}
	}
}

// The remote branch moved (someone else's commit) while the host had
// unpushed commits: fetch, Rebase, push keeps both histories, no duplicate.
func TestNonFastForwardRebase(t *testing.T) {
	e := newEnv(t)
	remoteDir, _ := e.bare("remote.git")
	localDir, repo := e.bare("local.git")
	ref, _ := RefName("web1")
	const branch = "refs/heads/hosts/web1"
	day := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	entries := chain(audit.Entry{}, 9, day, audit.KindIncident, audit.KindPlan)

	c1 := e.commit(repo, Batch{Host: "web1", Status: []byte("s1"), Audit: entries[:3]})
	e.mustGit(localDir, "push", "-q", remoteDir, branch+":"+branch)
	lastPushed := c1

	// Someone else adds a file on the host branch.
	work := filepath.Join(e.dir, "work")
	e.mustGit(e.dir, "clone", "-q", "-b", "hosts/web1", remoteDir, work)
	if err := os.WriteFile(filepath.Join(work, "NOTES.md"), []byte("investigating\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustGit(work, "add", "NOTES.md")
	e.mustGit(work, "commit", "-q", "-m", "operator note")
	e.mustGit(work, "push", "-q", "origin", "hosts/web1")

	// Meanwhile the host commits two batches locally; the second one
	// overlaps the first (a crash-and-retry), which must not matter.
	e.commit(repo, Batch{Host: "web1", Status: []byte("s2"), Audit: entries[3:6]})
	localTip := e.commit(repo, Batch{Host: "web1", Baselines: map[string][]byte{"process": []byte("{}")}, Audit: entries[4:9],
		Checkpoints: [][]byte{[]byte(`{"seq":9}`)}})

	if out, err := e.git(localDir, "push", remoteDir, branch+":"+branch); err == nil {
		t.Fatalf("diverged push succeeded:\n%s", out)
	}
	e.mustGit(localDir, "fetch", "-q", remoteDir, "+"+branch+":refs/remotes/origin/hosts/web1")
	onto, err := Tip(repo, "refs/remotes/origin/hosts/web1")
	if err != nil {
		t.Fatal(err)
	}

	sig := e.sig
	sig.When = sig.When.Add(time.Hour)
	tip, err := Rebase(repo, onto, lastPushed, localTip, "web1", sig, e.key.GitSigner())
	if err != nil {
		t.Fatal(err)
	}
	if err := Advance(repo, ref, localTip, tip); err != nil {
		t.Fatal(err)
	}
	e.mustGit(localDir, "push", "-q", remoteDir, branch+":"+branch) // fast forward now

	const rev = "hosts/web1"
	if got := strings.TrimSpace(e.mustGit(remoteDir, "rev-list", "--count", rev)); got != "4" {
		t.Errorf("%s commits on the remote, want 4 (ours, the operator's, our two replayed)", got)
	}
	e.mustGit(remoteDir, "merge-base", "--is-ancestor", onto.String(), rev)
	if got := e.mustGit(remoteDir, "show", rev+":NOTES.md"); got != "investigating\n" {
		t.Errorf("operator's file lost: %q", got)
	}
	if got := seqs(e.readDay(remoteDir, rev, "audit/2026/11/25.jsonl")); got != "1,2,3,4,5,6,7,8,9" {
		t.Errorf("day file seqs %s", got)
	}
	if got := e.mustGit(remoteDir, "show", rev+":status.json"); got != "s2" {
		t.Errorf("status.json = %q", got)
	}
	if got := e.mustGit(remoteDir, "show", rev+":audit/checkpoints.jsonl"); got != `{"seq":9}`+"\n" {
		t.Errorf("checkpoints = %q", got)
	}
	e.checkSignatures(remoteDir, rev, 1)
	if msg := e.mustGit(remoteDir, "log", "-1", "--format=%B", rev); !strings.Contains(msg, "Re-applied from "+localTip.String()) ||
		!strings.HasPrefix(msg, "picket web1: 3 audit entries (seq 7-9), 1 checkpoint, baseline process") {
		t.Errorf("replayed message:\n%s", msg)
	}

	// Rebasing again onto a tip that already has everything is a no-op.
	again, err := Rebase(repo, tip, lastPushed, localTip, "web1", sig, e.key.GitSigner())
	if err != nil {
		t.Fatal(err)
	}
	if again != tip {
		t.Errorf("second rebase made %s, want %s", again, tip)
	}
	// Our tip descending from onto: nothing to do.
	if h, err := Rebase(repo, onto, plumbing.ZeroHash, tip, "web1", sig, e.key.GitSigner()); err != nil || h != tip {
		t.Errorf("fast-forward case: %s, %v", h, err)
	}
}

// A re-imaged host starts a new branch history and a new audit chain
// (seq 1 again) while the remote keeps the old one: both chains stay.
func TestRebaseUnrelatedHistory(t *testing.T) {
	e := newEnv(t)
	remoteDir, remote := e.bare("remote.git")
	localDir, repo := e.bare("local.git")
	const branch = "refs/heads/hosts/web1"
	day := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	old := chain(audit.Entry{}, 4, day)
	e.commit(remote, Batch{Host: "web1", Status: []byte("old"), Audit: old})

	fresh := chain(audit.Entry{}, 2, day.Add(time.Hour), audit.KindAgentStart)
	localTip := e.commit(repo, Batch{Host: "web1", Status: []byte("new"), Audit: fresh})

	e.mustGit(localDir, "fetch", "-q", remoteDir, "+"+branch+":refs/remotes/origin/hosts/web1")
	onto, _ := Tip(repo, "refs/remotes/origin/hosts/web1")
	tip, err := Rebase(repo, onto, plumbing.ZeroHash, localTip, "web1", e.sig, e.key.GitSigner())
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := RefName("web1")
	if err := Advance(repo, ref, localTip, tip); err != nil {
		t.Fatal(err)
	}
	e.mustGit(localDir, "push", "-q", remoteDir, branch+":"+branch)
	if got := seqs(e.readDay(remoteDir, "hosts/web1", "audit/2026/11/25.jsonl")); got != "1,2,3,4,1,2" {
		t.Errorf("day file seqs %s, want both chains", got)
	}
	if got := e.mustGit(remoteDir, "show", "hosts/web1:status.json"); got != "new" {
		t.Errorf("status %q", got)
	}
	e.checkSignatures(remoteDir, "hosts/web1", 0)
}

func TestAdvanceDetectsConcurrentWriter(t *testing.T) {
	e := newEnv(t)
	_, repo := e.bare("r.git")
	ref, _ := RefName("web1")
	a := e.commit(repo, Batch{Host: "web1", Status: []byte("a")})
	b, err := Commit(repo, a, Batch{Host: "web1", Status: []byte("b")}, e.sig, e.key.GitSigner())
	if err != nil {
		t.Fatal(err)
	}
	if err := Advance(repo, ref, plumbing.ZeroHash, b); err == nil {
		t.Error("Advance from a stale old hash succeeded")
	}
	if err := Advance(repo, ref, a, b); err != nil {
		t.Error(err)
	}
}
