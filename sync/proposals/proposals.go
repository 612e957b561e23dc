// Package proposals turns a false positive into a whitelist proposal on the
// config repository: the minimal CUE change that whitelists the entity, on
// top of the current main, validated with the embedded schema, as a commit
// signed by the host key for the branch proposals/<hostname>/<id>. Merging
// that branch into main (signed by a trusted key) is the approval; Covered
// tells, from an applied policy, that it happened. The agent's feedback
// processor queues proposal documents; the syncer builds and pushes them.
//
// Where a change goes (documented for reviewers):
//   - a source IP → whitelists/ips.cue, an entry of whitelist.ips (trusted:
//     its signals are still recorded, but never raise an incident above
//     observe). Never admin_ips: an admin address is invisible to picket,
//     a decision for a human, not for an agent.
//   - a user → whitelists/users.cue, an entry of whitelist.users.
//
// Other entity kinds (a process, a file) have no whitelist in the schema:
// they get the local suppression only, and no proposal.
package proposals

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"testing/fstest"
	"time"

	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

// Statuses of a proposal.
const (
	// StatusQueued: recorded, not yet on the remote (offline, or not yet
	// synced).
	StatusQueued = "queued"
	// StatusOpen: the branch is on the remote, waiting for a merge.
	StatusOpen = "open"
	// StatusMerged: an applied, signed main carries the change.
	StatusMerged = "merged"
	// StatusExpired: its local suppression ran out before a merge.
	StatusExpired = "expired"
)

// Files the proposals edit.
const (
	IPsFile   = "whitelists/ips.cue"
	UsersFile = "whitelists/users.cue"
)

// ErrUnsupported: no whitelist exists for this kind of entity.
var ErrUnsupported = errors.New("proposals: no whitelist for this kind of entity")

// Doc is what a proposal carries from the verdict to the commit.
type Doc struct {
	Kind     string    `json:"kind"` // ip | user
	Value    string    `json:"value"`
	Rules    []string  `json:"rules"`
	Host     string    `json:"host"`
	Verdict  string    `json:"verdict"`
	Note     string    `json:"note,omitempty"`
	Who      string    `json:"who,omitempty"`
	Feedback int64     `json:"feedback"`
	Incident int64     `json:"incident,omitempty"`
	Action   int64     `json:"action,omitempty"`
	AuditSeq int64     `json:"audit_seq"`
	Evidence []string  `json:"evidence,omitempty"` // signal reasons, deterministic text
	Created  time.Time `json:"created"`
	// File and Base are filled when the commit is built.
	File string `json:"file,omitempty"`
	Base string `json:"base,omitempty"`
}

// Supported reports whether an entity kind can be proposed.
func Supported(kind string) bool { return kind == "ip" || kind == "user" }

// Pattern is the deduplication key of a proposal: one live proposal per
// whitelisted thing.
func Pattern(kind, value string) string { return kind + ":" + value }

// Branch names the proposal branch.
func Branch(host string, id int64) string { return fmt.Sprintf("proposals/%s/%d", host, id) }

// Covered reports whether policy p already whitelists what d proposes.
func Covered(p *schema.Policy, d Doc) bool {
	m, err := whitelist.New(p.Whitelist)
	if err != nil {
		return false
	}
	switch d.Kind {
	case "ip":
		pfx, err := whitelist.ParsePrefix(d.Value)
		if err != nil {
			return false
		}
		return m.Trusted(pfx.Addr()) || m.Admin(pfx.Addr())
	case "user":
		return m.User(d.Value)
	}
	return false
}

// Change is the edit of one file.
type Change struct {
	Path    string
	Content []byte // the whole new file
	Added   string // the appended text, for the commit message
}

// Plan computes the change for d on the config tree fsys (main's tree) for
// host, and validates the resulting tree with the schema, as `picket
// validate` does. covered is true (and no change) when main already
// whitelists it.
func Plan(fsys fs.FS, host string, d Doc) (ch Change, covered bool, err error) {
	if !Supported(d.Kind) {
		return ch, false, fmt.Errorf("%w: %s", ErrUnsupported, d.Kind)
	}
	pol, err := schema.LoadFS(fsys, host)
	if err != nil {
		return ch, false, fmt.Errorf("proposals: main does not validate: %w", err)
	}
	if Covered(pol, d) {
		return ch, true, nil
	}
	var block string
	switch d.Kind {
	case "ip":
		pfx, err := whitelist.ParsePrefix(d.Value)
		if err != nil {
			return ch, false, fmt.Errorf("proposals: address %q: %w", d.Value, err)
		}
		cidr := pfx.String()
		if pfx.IsSingleIP() {
			cidr = pfx.Addr().String()
		}
		ch.Path = IPsFile
		block = fmt.Sprintf("whitelist: ips: %s: {\n\tcidr: %s\n\tnote: %s\n}\n", quote(entryName(d.Host, cidr)), quote(cidr), quote(noteOf(d)))
	case "user":
		ch.Path = UsersFile
		block = fmt.Sprintf("whitelist: users: %s: note: %s\n", quote(d.Value), quote(noteOf(d)))
	}
	old, err := fs.ReadFile(fsys, ch.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ch, false, fmt.Errorf("proposals: read %s: %w", ch.Path, err)
	}
	var b strings.Builder
	b.Write(old)
	if len(old) > 0 && !strings.HasSuffix(string(old), "\n") {
		b.WriteByte('\n')
	}
	if len(old) > 0 {
		b.WriteByte('\n')
	}
	added := fmt.Sprintf("// Proposed by picket on %s (feedback %d, %s).\n%s", d.Host, d.Feedback, d.Verdict, block)
	b.WriteString(added)
	ch.Content, ch.Added = []byte(b.String()), added
	if err := validateWith(fsys, host, ch); err != nil {
		return ch, false, err
	}
	return ch, false, nil
}

// validateWith loads the tree with the change laid over it.
func validateWith(fsys fs.FS, host string, ch Change) error {
	m := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		m[p] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	if err != nil {
		return fmt.Errorf("proposals: read tree: %w", err)
	}
	m[ch.Path] = &fstest.MapFile{Data: ch.Content, Mode: 0o644}
	if _, err := schema.LoadFS(m, host); err != nil {
		return fmt.Errorf("proposals: change to %s does not validate: %w", ch.Path, err)
	}
	return nil
}

// entryName names the whitelist entry: unique per host and address, so
// proposals from several hosts for one address merge without conflict.
func entryName(host, cidr string) string {
	r := strings.NewReplacer(".", "-", ":", "-", "/", "-")
	return "picket-" + host + "-" + r.Replace(cidr)
}

func noteOf(d Doc) string {
	n := fmt.Sprintf("%s on %s (feedback %d", d.Verdict, d.Host, d.Feedback)
	if d.Incident != 0 {
		n += fmt.Sprintf(", incident %d", d.Incident)
	}
	n += ")"
	if d.Note != "" {
		n += ": " + oneLine(d.Note)
	}
	return n
}

// quote writes a CUE string literal (JSON's escapes are valid CUE).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Message is the commit message: what, why, the evidence, and the audit
// entry id that recorded the verdict.
func Message(d Doc, ch Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "picket: whitelist %s %s on %s (%s)\n\n", d.Kind, d.Value, d.Host, d.Verdict)
	fmt.Fprintf(&b, "The operator %s marked ", orSomeone(d.Who))
	switch {
	case d.Incident != 0 && d.Action != 0:
		fmt.Fprintf(&b, "action %d of incident %d", d.Action, d.Incident)
	case d.Action != 0:
		fmt.Fprintf(&b, "action %d", d.Action)
	default:
		fmt.Fprintf(&b, "incident %d", d.Incident)
	}
	fmt.Fprintf(&b, " on %s as a %s.\n", d.Host, d.Verdict)
	if d.Note != "" {
		fmt.Fprintf(&b, "Note: %s\n", oneLine(d.Note))
	}
	fmt.Fprintf(&b, "\nChange: %s\n%s\n", ch.Path, indent(ch.Added))
	if len(d.Evidence) > 0 {
		b.WriteString("Evidence:\n")
		for _, e := range d.Evidence {
			fmt.Fprintf(&b, "  - %s\n", oneLine(e))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "Rules: %s\n", strings.Join(d.Rules, ", "))
	fmt.Fprintf(&b, "Picket-Feedback: %d\nPicket-Audit-Entry: %d\nPicket-Host: %s\n", d.Feedback, d.AuditSeq, d.Host)
	return b.String()
}

func orSomeone(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// ValidAddr reports whether s is an address or prefix a proposal can carry.
func ValidAddr(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}
