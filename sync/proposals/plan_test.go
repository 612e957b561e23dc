package proposals

import (
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPlan runs Plan on a copy of the example config repository: a new
// address and a new user are appended to the right whitelist file and the
// result validates; what main already covers needs no change.
func TestPlan(t *testing.T) {
	base := fstest.MapFS{}
	for _, f := range []string{"picket.cue", "whitelists/admin.cue", "whitelists/users.cue", "hosts/web1.cue"} {
		b, err := os.ReadFile("../../examples/config-repo/" + f)
		if err != nil {
			t.Fatal(err)
		}
		base[f] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	cases := []struct {
		name, kind, value, path, added string
		covered                        bool
	}{
		{"new address", "ip", "198.51.100.77", "whitelists/ips.cue", "198.51.100.77", false},
		{"new user", "user", "backup-bot", "whitelists/users.cue", "backup-bot", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, covered, err := Plan(base, "web1", Doc{Kind: c.kind, Value: c.value, Verdict: "false-positive", Feedback: 1})
			if err != nil || covered != c.covered {
				t.Fatalf("plan: %+v covered=%v err=%v", ch, covered, err)
			}
			if ch.Path != c.path || !strings.Contains(string(ch.Content), c.added) {
				t.Fatalf("change %s:\n%s", ch.Path, ch.Content)
			}
			// Applied to the tree, the same doc is covered.
			next := fstest.MapFS{}
			for k, v := range base {
				next[k] = v
			}
			next[ch.Path] = &fstest.MapFile{Data: ch.Content, Mode: 0o644}
			if _, covered, err := Plan(next, "web1", Doc{Kind: c.kind, Value: c.value}); err != nil || !covered {
				t.Fatalf("after the change: covered=%v err=%v", covered, err)
			}
		})
	}
	if _, _, err := Plan(base, "web1", Doc{Kind: "process", Value: "/usr/bin/x"}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("process: %v", err)
	}
	if _, _, err := Plan(base, "web1", Doc{Kind: "ip", Value: "not-an-ip"}); err == nil {
		t.Fatal("bad address accepted")
	}
}
