// Package hostbranch builds the commits of a host's own branch,
// hosts/<hostname>, in the agent's local clone: status.json,
// baseline/<kind>.json and the audit trail as JSON lines
// (audit/<yyyy>/<mm>/<dd>.jsonl, audit/checkpoints.jsonl), each commit
// signed with the host key so `git log --show-signature` verifies it.
// The outbox loop calls Commit for each batch it drains and moves the ref;
// sync/remote pushes the ref. It never touches a worktree (the clone may be
// bare) and never moves a ref on its own except through Advance.
//
// Exactly once: appending is idempotent. An audit entry already in its day
// file (same seq and hash), or a checkpoint line already in
// checkpoints.jsonl, is skipped, and a batch that changes nothing yields no
// commit. So a batch may be applied again after a crash (was it committed
// before we died?) or on top of a fetched tip without duplicating anything.
//
// Non-fast-forward (the host was re-imaged, or someone pushed to the host
// branch): fetch the remote tip, then either call Commit again on that tip
// for every batch not confirmed pushed (the outbox still has them; what the
// remote already holds is skipped), or call Rebase(repo, remoteTip,
// lastPushed, localTip, ...), which replays the local unpushed commits
// themselves, so the outbox may forget a batch once it is committed. Either
// way: Advance the local ref to the result and push again (a fast forward).
// The remote's history is kept as is; nothing is force-pushed.
//
// Like go-git itself, nothing here is safe for concurrent use on the same
// repository: one goroutine owns the clone.
package hostbranch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/picket-agent/picket/audit"
)

// Paths on the host branch (DESIGN.md "Host branch").
const (
	StatusPath      = "status.json"
	BaselineDir     = "baseline"
	AuditDir        = "audit"
	CheckpointsPath = "audit/checkpoints.jsonl"
)

// Batch is what one commit adds to the host branch.
type Batch struct {
	// Host names the host in the commit subject ("picket web1: ...").
	Host string
	// Status replaces status.json when non-nil.
	Status []byte
	// Baselines replace baseline/<kind>.json, one per kind. A kind is a
	// plain file name: letters, digits, '.', '_', '-'.
	Baselines map[string][]byte
	// Audit entries are appended as JSON lines to audit/<yyyy>/<mm>/<dd>.jsonl
	// by entry time in UTC; an entry whose seq is already in its file is
	// skipped. Every entry needs a seq > 0 and a time.
	Audit []audit.Entry
	// Checkpoints are appended as lines to audit/checkpoints.jsonl (one
	// JSON object each, no newline inside); a line already there is skipped.
	Checkpoints [][]byte
	// Message is an optional note added to the commit body, e.g. why the
	// batch was written.
	Message string
}

// Signature is the author and committer of the commits.
type Signature struct {
	Name  string
	Email string
	When  time.Time // zero: now
}

// RefName returns refs/heads/hosts/<host>, refusing host names that are not
// a single, safe ref component (the name comes from the machine).
func RefName(host string) (plumbing.ReferenceName, error) {
	if !validHost.MatchString(host) || strings.Contains(host, "..") || strings.HasSuffix(host, ".lock") || strings.HasSuffix(host, ".") {
		return "", fmt.Errorf("host name %q cannot name a git branch", host)
	}
	return plumbing.NewBranchReferenceName("hosts/" + host), nil
}

var (
	validHost = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	validKind = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	dayFile   = regexp.MustCompile(`^audit/[0-9]{4}/[0-9]{2}/[0-9]{2}\.jsonl$`)
)

// DayPath returns the audit file for an entry time: audit/<yyyy>/<mm>/<dd>.jsonl in UTC.
func DayPath(t time.Time) string {
	return AuditDir + "/" + t.UTC().Format("2006/01/02") + ".jsonl"
}

// Tip returns the commit ref points to, or the zero hash when the ref does
// not exist yet.
func Tip(repo *git.Repository, ref plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := repo.Reference(ref, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s: %w", ref, err)
	}
	return r.Hash(), nil
}

// Advance moves ref from old to new, failing if ref no longer points to old
// (zero old: ref must not exist), so a concurrent writer is detected
// instead of overwritten.
func Advance(repo *git.Repository, ref plumbing.ReferenceName, old, new plumbing.Hash) error {
	cur, err := Tip(repo, ref)
	if err != nil {
		return err
	}
	if cur != old {
		return fmt.Errorf("%s is at %s, expected %s", ref, short(cur), short(old))
	}
	var oldRef *plumbing.Reference
	if !old.IsZero() {
		oldRef = plumbing.NewHashReference(ref, old)
	}
	if err := repo.Storer.CheckAndSetReference(plumbing.NewHashReference(ref, new), oldRef); err != nil {
		return fmt.Errorf("update %s: %w", ref, err)
	}
	return nil
}

// Commit writes a commit with parent as its only parent (zero parent: an
// orphan first commit) whose tree is the parent's tree plus b, signed with
// signer, and returns its hash. It does not move any ref (see Advance).
//
// When b changes nothing in the parent's tree (everything already there),
// Commit writes no commit and returns parent: applying a batch twice is
// harmless, and the caller can tell by comparing the result with parent.
//
// An audit entry is identified by (seq, hash): the hash tells a re-imaged
// host's new chain (restarting at seq 1) from the old one. The day files are
// assumed to hold entries in increasing seq order, as the audit chain
// produces them; the usual case then only reads the seq of the file's last
// line. An entry at or below that seq makes Commit index every (seq, hash)
// of the file (the re-apply case) and skip the entry if present; an absent
// one is appended, out of order but not lost.
func Commit(repo *git.Repository, parent plumbing.Hash, b Batch, sig Signature, signer git.Signer) (plumbing.Hash, error) {
	ch, err := batchChanges(b)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return commitChanges(repo, parent, ch, b.Host, b.Message, sig, sig, signer)
}

// Rebase replays the local commits that the remote does not have on top of
// onto, the freshly fetched remote tip, and returns the new local tip to
// Advance the ref to and push (a fast forward of onto). This resolves a
// non-fast-forward without rewriting or dropping anything of the remote:
//
//	tip, err := hostbranch.Rebase(repo, fetchedTip, lastPushed, localTip, host, sig, signer)
//	hostbranch.Advance(repo, ref, localTip, tip); push
//
// The local commits are those on local's first-parent chain after base, the
// last commit known to be on the remote (the remote-tracking ref before the
// fetch; zero when unknown). If base is zero or not on that chain, the merge
// base of local and onto is used, and with no common history (host
// re-imaged) the whole local chain is replayed. Each commit's changes are
// re-applied with Commit's rules: status and baseline files take the local
// version, appended audit and checkpoint lines are appended unless already
// present, so commits the remote already has turn into nothing. Deleted
// files are not replayed (the agent never deletes). Authors and author
// times are kept; sig becomes the committer.
//
// If onto already descends from local, or local from onto, nothing needs
// replaying and the descendant is returned.
func Rebase(repo *git.Repository, onto, base, local plumbing.Hash, host string, sig Signature, signer git.Signer) (plumbing.Hash, error) {
	if local.IsZero() || local == onto {
		return onto, nil
	}
	if onto.IsZero() {
		return local, nil
	}
	chain, ffLocal, err := localCommits(repo, onto, base, local)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if ffLocal {
		return local, nil
	}
	tip := onto
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		ch, err := commitDiff(repo, c)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("replay %s: %w", short(c.Hash), err)
		}
		note := "Re-applied from " + c.Hash.String() + " on top of the remote branch (non-fast-forward)."
		author := Signature{Name: c.Author.Name, Email: c.Author.Email, When: c.Author.When}
		next, err := commitChanges(repo, tip, ch, host, note, author, sig, signer)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("replay %s: %w", short(c.Hash), err)
		}
		tip = next
	}
	return tip, nil
}

// localCommits returns the commits to replay, newest first, or ff=true
// when local already descends from onto.
func localCommits(repo *git.Repository, onto, base, local plumbing.Hash) ([]*object.Commit, bool, error) {
	walk := func(stop map[plumbing.Hash]bool) ([]*object.Commit, bool, bool, error) {
		var chain []*object.Commit
		h := local
		for !h.IsZero() {
			if h == onto {
				return nil, true, true, nil
			}
			if stop[h] {
				return chain, false, true, nil
			}
			c, err := repo.CommitObject(h)
			if err != nil {
				return nil, false, false, fmt.Errorf("read local commit %s: %w", short(h), err)
			}
			chain = append(chain, c)
			h = plumbing.ZeroHash
			if len(c.ParentHashes) > 0 {
				h = c.ParentHashes[0]
			}
		}
		return chain, false, false, nil
	}
	if !base.IsZero() {
		chain, ff, found, err := walk(map[plumbing.Hash]bool{base: true})
		if err != nil || ff || found {
			return chain, ff, err
		}
	}
	// No usable hint: find the common history.
	lc, err := repo.CommitObject(local)
	if err != nil {
		return nil, false, fmt.Errorf("read local tip: %w", err)
	}
	oc, err := repo.CommitObject(onto)
	if err != nil {
		return nil, false, fmt.Errorf("read remote tip: %w", err)
	}
	bases, err := lc.MergeBase(oc)
	if err != nil {
		return nil, false, fmt.Errorf("merge base: %w", err)
	}
	stop := map[plumbing.Hash]bool{}
	for _, b := range bases {
		stop[b.Hash] = true
	}
	chain, ff, _, err := walk(stop)
	return chain, ff, err
}

// change is what a commit does to one file.
type change struct {
	replace    []byte   // new content, for replaced files
	isReplace  bool     // replace, else append lines
	lines      [][]byte // appended lines, without newline
	bySeq      bool     // dedupe appended lines by their "seq", else by content
	checkpoint bool
}

func batchChanges(b Batch) (map[string]*change, error) {
	ch := map[string]*change{}
	if b.Status != nil {
		ch[StatusPath] = &change{replace: b.Status, isReplace: true}
	}
	for kind, data := range b.Baselines {
		if !validKind.MatchString(kind) || strings.Contains(kind, "..") {
			return nil, fmt.Errorf("baseline kind %q is not a plain file name", kind)
		}
		if data == nil {
			return nil, fmt.Errorf("baseline %q: no content (the host branch never deletes a baseline)", kind)
		}
		ch[BaselineDir+"/"+kind+".json"] = &change{replace: data, isReplace: true}
	}
	entries := append([]audit.Entry(nil), b.Audit...)
	// Seq order is chain order; a stable sort keeps a caller's already
	// ordered batch as is and repairs one that is not.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Seq < entries[j].Seq })
	for _, e := range entries {
		if e.Seq <= 0 {
			return nil, fmt.Errorf("audit entry %q has no seq (not sealed?)", e.Kind)
		}
		if e.Time.IsZero() {
			return nil, fmt.Errorf("audit entry %d has no time", e.Seq)
		}
		line, err := entryLine(e)
		if err != nil {
			return nil, err
		}
		p := DayPath(e.Time)
		c := ch[p]
		if c == nil {
			c = &change{bySeq: true}
			ch[p] = c
		}
		c.lines = append(c.lines, line)
	}
	for i, cp := range b.Checkpoints {
		line := bytes.TrimRight(cp, "\r\n")
		if len(line) == 0 || bytes.ContainsAny(line, "\r\n") {
			return nil, fmt.Errorf("checkpoint %d is empty or spans lines", i)
		}
		c := ch[CheckpointsPath]
		if c == nil {
			c = &change{checkpoint: true}
			ch[CheckpointsPath] = c
		}
		c.lines = append(c.lines, line)
	}
	return ch, nil
}

// entryLine encodes e as one JSON line from which its hash can be
// recomputed: without HTML escaping (json.Marshal would turn "<" in Data
// into \u003c, changing the hashed bytes), and only if Data is already
// compact, since a JSON line cannot keep Data's whitespace and the hash
// covers Data byte for byte.
func entryLine(e audit.Entry) ([]byte, error) {
	if len(e.Data) > 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, e.Data); err != nil {
			return nil, fmt.Errorf("audit entry %d: data is not valid JSON: %w", e.Seq, err)
		}
		if !bytes.Equal(c.Bytes(), e.Data) {
			return nil, fmt.Errorf("audit entry %d: data is not compact JSON, so the exported line could not reproduce the entry's hash (compact Data before sealing)", e.Seq)
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("audit entry %d: %w", e.Seq, err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// commitDiff turns a local commit back into the changes it made.
func commitDiff(repo *git.Repository, c *object.Commit) (map[string]*change, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	var parentTree *object.Tree
	if len(c.ParentHashes) > 0 {
		p, err := repo.CommitObject(c.ParentHashes[0])
		if err != nil {
			return nil, err
		}
		if parentTree, err = p.Tree(); err != nil {
			return nil, err
		}
	}
	diffs, err := object.DiffTree(parentTree, tree)
	if err != nil {
		return nil, err
	}
	ch := map[string]*change{}
	for _, d := range diffs {
		if d.To.Name == "" || d.To.TreeEntry.Mode == filemode.Dir {
			continue // deletion: not replayed
		}
		p := d.To.Name
		newData, err := readBlob(repo, d.To.TreeEntry.Hash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !isAppendLog(p) {
			ch[p] = &change{replace: newData, isReplace: true}
			continue
		}
		var oldData []byte
		if d.From.Name != "" {
			if oldData, err = readBlob(repo, d.From.TreeEntry.Hash); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
		added := newData
		if bytes.HasPrefix(newData, oldData) {
			added = newData[len(oldData):]
		} // else: rewritten; offer every line, dedupe keeps what is new
		c := &change{bySeq: p != CheckpointsPath, checkpoint: p == CheckpointsPath}
		for _, l := range bytes.Split(added, []byte("\n")) {
			if l = bytes.TrimRight(l, "\r"); len(l) > 0 {
				c.lines = append(c.lines, l)
			}
		}
		if len(c.lines) > 0 {
			ch[p] = c
		}
	}
	return ch, nil
}

func isAppendLog(p string) bool { return p == CheckpointsPath || dayFile.MatchString(p) }

// stats is what a commit actually wrote, for its message.
type stats struct {
	entries, skipped int
	minSeq, maxSeq   int64
	kinds            map[string]int
	checkpoints      int
	status           bool
	baselines        []string
	other            []string
}

func commitChanges(repo *git.Repository, parent plumbing.Hash, ch map[string]*change, host, note string, author, committer Signature, signer git.Signer) (plumbing.Hash, error) {
	if signer == nil {
		return plumbing.ZeroHash, errors.New("hostbranch: no signer (host commits must be signed)")
	}
	var parentTree plumbing.Hash
	if !parent.IsZero() {
		pc, err := repo.CommitObject(parent)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("parent %s: %w", short(parent), err)
		}
		parentTree = pc.TreeHash
	}
	st := &stats{kinds: map[string]int{}}
	edits := map[string]fileEdit{}
	for p, c := range ch {
		edits[p] = st.edit(p, c)
	}
	tree, err := editTree(repo, parentTree, edits)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if !parent.IsZero() && tree == parentTree {
		return parent, nil
	}

	now := time.Now()
	if author.When.IsZero() {
		author.When = now
	}
	if committer.When.IsZero() {
		committer.When = now
	}
	c := &object.Commit{
		Author:    gitSignature(author),
		Committer: gitSignature(committer),
		Message:   st.message(host, note),
		TreeHash:  tree,
	}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	return SignAndStore(repo, c, signer)
}

// SignAndStore signs c with signer and stores it in repo. It signs exactly
// what git verifies: the commit encoded without its gpgsig header. The
// host branch and the whitelist proposals both commit through it.
func SignAndStore(repo *git.Repository, c *object.Commit, signer git.Signer) (plumbing.Hash, error) {
	payload := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(payload); err != nil {
		return plumbing.ZeroHash, err
	}
	r, err := payload.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sig, err := signer.Sign(r)
	r.Close()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("sign commit: %w", err)
	}
	c.PGPSignature = string(sig)
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

// gitSignature drops the characters that would break the commit header.
func gitSignature(s Signature) object.Signature {
	clean := strings.NewReplacer("<", "", ">", "", "\n", " ", "\r", " ", "\x00", "")
	return object.Signature{Name: clean.Replace(s.Name), Email: clean.Replace(s.Email), When: s.When}
}

// message: a subject that says what the commit holds, then details.
func (st *stats) message(host, note string) string {
	var parts []string
	if st.entries > 0 {
		s := plural(st.entries, "audit entry", "audit entries")
		if st.maxSeq > 0 {
			if st.minSeq == st.maxSeq {
				s += fmt.Sprintf(" (seq %d)", st.minSeq)
			} else {
				s += fmt.Sprintf(" (seq %d-%d)", st.minSeq, st.maxSeq)
			}
		}
		parts = append(parts, s)
	}
	if st.checkpoints > 0 {
		parts = append(parts, plural(st.checkpoints, "checkpoint", "checkpoints"))
	}
	if st.status {
		parts = append(parts, "status")
	}
	sort.Strings(st.baselines)
	if len(st.baselines) > 0 {
		parts = append(parts, "baseline "+strings.Join(st.baselines, ", "))
	}
	sort.Strings(st.other)
	parts = append(parts, st.other...)
	if len(parts) == 0 {
		parts = append(parts, "start of the host branch")
	}
	who := "picket"
	if host != "" {
		who += " " + host
	}
	var b strings.Builder
	b.WriteString(who + ": " + strings.Join(parts, ", ") + "\n")
	var body []string
	if len(st.kinds) > 0 {
		kinds := make([]string, 0, len(st.kinds))
		for k := range st.kinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for i, k := range kinds {
			name := k
			if name == "" {
				name = "(no kind)"
			}
			kinds[i] = fmt.Sprintf("%s %d", name, st.kinds[k])
		}
		body = append(body, "Audit kinds: "+strings.Join(kinds, ", ")+".")
	}
	if st.skipped > 0 {
		body = append(body, plural(st.skipped, "audit entry was", "audit entries were")+" already on the branch and skipped.")
	}
	if note = strings.TrimSpace(note); note != "" {
		body = append(body, note)
	}
	if len(body) > 0 {
		b.WriteString("\n" + strings.Join(body, "\n") + "\n")
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func short(h plumbing.Hash) string {
	if h.IsZero() {
		return "(none)"
	}
	return h.String()[:12]
}
