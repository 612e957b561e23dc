package baseline

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Version is one promoted baseline: what the Deviations detector compares
// against, and what is committed as baseline/<kind>.json with an audit
// entry naming Reason (end of learning, relearn, feedback).
type Version struct {
	N      int                        `json:"n"`
	At     time.Time                  `json:"at"`
	Reason string                     `json:"reason"`
	Kinds  map[string]json.RawMessage `json:"kinds"`
}

// Model rebuilds the version's model (for the detector or for drift
// learning on top of it).
func (v Version) Model(c Caps) (*Model, error) { return v.ModelIn(c, nil) }

// ModelIn is Model reading hours of the day in loc (nil: time.Local).
func (v Version) ModelIn(c Caps, loc *time.Location) (*Model, error) {
	s, err := ParseKinds(v.Kinds)
	if err != nil {
		return nil, err
	}
	return FromSnapshotIn(s, c, loc)
}

// Versions is the history of promotions, numbered from 1. Promotions are
// rare (a few per host lifetime), so the history is kept whole.
type Versions struct {
	list []Version
}

// NewVersions resumes a history loaded from state; versions must be
// numbered 1..n in order.
func NewVersions(vs []Version) (*Versions, error) {
	for i, v := range vs {
		if v.N != i+1 {
			return nil, fmt.Errorf("baseline version %d found at position %d", v.N, i+1)
		}
	}
	return &Versions{list: slices.Clone(vs)}, nil
}

// Promote freezes m as the next version.
func (vs *Versions) Promote(m *Model, reason string, at time.Time) Version {
	v := Version{N: len(vs.list) + 1, At: at.Round(0).UTC(), Reason: reason, Kinds: m.Snapshot().Kinds()}
	vs.list = append(vs.list, v)
	return v
}

// Latest returns the newest version, false before the first promotion.
func (vs *Versions) Latest() (Version, bool) {
	if len(vs.list) == 0 {
		return Version{}, false
	}
	return vs.list[len(vs.list)-1], true
}

// Get returns version n.
func (vs *Versions) Get(n int) (Version, bool) {
	if n < 1 || n > len(vs.list) {
		return Version{}, false
	}
	return vs.list[n-1], true
}

// All returns the history, oldest first.
func (vs *Versions) All() []Version { return slices.Clone(vs.list) }

// Change is one key added to or removed from a kind between two versions.
type Change struct {
	Kind string `json:"kind"`
	Op   string `json:"op"` // added | removed
	Key  string `json:"key"`
}

// String is the line `picket baseline diff` prints: "+ process: …".
func (c Change) String() string {
	sign := "+"
	if c.Op == "removed" {
		sign = "-"
	}
	return sign + " " + c.Kind + ": " + c.Key
}

// Diff lists the keys added and removed from a to b, by kind (in
// AllKinds order), then key, removals before additions. Counts and
// times are not compared: they change on every promotion and git shows
// them anyway.
func Diff(a, b Version) ([]Change, error) {
	ka, err := keySets(a)
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", a.N, err)
	}
	kb, err := keySets(b)
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", b.N, err)
	}
	var out []Change
	for _, kind := range AllKinds() {
		var cs []Change
		for k := range ka[kind] {
			if !kb[kind][k] {
				cs = append(cs, Change{Kind: kind, Op: "removed", Key: k})
			}
		}
		for k := range kb[kind] {
			if !ka[kind][k] {
				cs = append(cs, Change{Kind: kind, Op: "added", Key: k})
			}
		}
		slices.SortFunc(cs, func(x, y Change) int {
			return cmp.Or(strings.Compare(x.Key, y.Key), -strings.Compare(x.Op, y.Op))
		})
		out = append(out, cs...)
	}
	return out, nil
}

// keySets renders each key of a version as the text diff lines use.
func keySets(v Version) (map[string]map[string]bool, error) {
	s, err := ParseKinds(v.Kinds)
	if err != nil {
		return nil, err
	}
	sets := map[string]map[string]bool{}
	add := func(kind, key string) {
		if sets[kind] == nil {
			sets[kind] = map[string]bool{}
		}
		sets[kind][key] = true
	}
	for _, e := range s.Process {
		add(KindProcess, fmt.Sprintf("%s → %s as %s", orUnknown(e.Parent), e.Exe, e.User))
	}
	for _, e := range s.Outbound {
		add(KindOutbound, fmt.Sprintf("%s → %s port %d/%s", orUnknown(e.Exe), orUnknown(e.Prefix), e.Port, e.Proto))
	}
	for _, e := range s.Listener {
		add(KindListener, fmt.Sprintf("%s listens on %d/%s", orUnknown(e.Exe), e.Port, e.Proto))
	}
	for _, e := range s.Auth.Logins {
		add(KindAuth, fmt.Sprintf("%s from %s by %s", e.User, orLocal(e.Prefix), orUnknown(e.Method)))
	}
	for _, e := range s.Auth.Hours {
		for h, n := range e.Hours {
			if n > 0 {
				add(KindAuth, fmt.Sprintf("%s at %02dh", e.User, h))
			}
		}
	}
	for _, e := range s.Web.Sources {
		add(KindWeb, "source "+e.Key)
	}
	for _, e := range s.Web.Clients {
		add(KindWeb, "client "+e.Key)
	}
	for _, e := range s.Persist {
		add(KindPersistence, fmt.Sprintf("%s %s: %s", e.What, orUnknown(e.Path), e.Entry))
	}
	for _, e := range s.Files {
		add(KindFiles, fmt.Sprintf("%s sha256:%s", e.Path, e.SHA256))
	}
	return sets, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func orLocal(s string) string {
	if s == "" {
		return "(local)"
	}
	return s
}
