package trust

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
)

// BenchmarkVerify200On5000 is the incremental sync of the issue: a config
// repository with 5,000 commits of (unsigned, pre-adoption) history, and 200
// new SSH-signed commits on top since the applied revision. The history is
// written with git fast-import; the 200 are real `git commit -S` with
// gpg.format=ssh, then everything is packed as a fetch would leave it.
func BenchmarkVerify200On5000(b *testing.B) {
	const history, fresh = 5000, 200
	start := time.Now()
	alice := newSSHKey(b, "alice")
	local := trustDir(b, []string{"alice@example.com " + alice.sshPub})
	r := newGitRepo(b)

	var stream strings.Builder
	for i := 1; i <= history; i++ {
		msg := fmt.Sprintf("history %d\n", i)
		content := fmt.Sprintf("threshold: %d\n", i)
		fmt.Fprintf(&stream, "commit refs/heads/main\nmark :%d\ncommitter Hist <h@example.com> %d +0000\ndata %d\n%s", i, 1600000000+i*60, len(msg), msg)
		if i > 1 {
			fmt.Fprintf(&stream, "from :%d\n", i-1)
		}
		fmt.Fprintf(&stream, "M 644 inline policy.cue\ndata %d\n%s\n", len(content), content)
	}
	if _, err := r.runErr(nil, []byte(stream.String()), "fast-import", "--quiet"); err != nil {
		b.Fatal(err)
	}
	r.run(nil, "checkout", "-q", "-f", "main")
	applied := r.head()
	for i := 0; i < fresh; i++ {
		r.commit(fmt.Sprintf("change %d", i), alice, map[string]string{"policy.cue": fmt.Sprintf("threshold: %d\n", 10000+i)})
		if time.Since(start) > 60*time.Second {
			b.Skipf("creating the repository took over 60 s (%d of %d signed commits made)", i+1, fresh)
		}
	}
	top := r.head()
	r.run(nil, "repack", "-adq")
	b.Logf("setup: %d+%d commits in %v", history, fresh, time.Since(start).Round(time.Millisecond))

	run := func(b *testing.B, mode Mode, cache Cache, want int) {
		for b.Loop() {
			// Reopen each time: the agent's go-git object cache would be
			// warm between rounds, so this is the pessimistic figure.
			repo, err := git.PlainOpen(r.dir)
			if err != nil {
				b.Fatal(err)
			}
			res, err := Verify(repo, Request{From: applied, To: top, Mode: mode, Local: local, Cache: cache})
			if err != nil {
				b.Fatal(err)
			}
			if res.Verified != want {
				b.Fatalf("verified %d, want %d", res.Verified, want)
			}
		}
		b.ReportMetric(float64(want), "commits/op")
	}
	b.Run("first-parent", func(b *testing.B) { run(b, FirstParent, nil, fresh) })
	b.Run("first-parent-cached", func(b *testing.B) {
		c := NewMemoryCache(1000)
		repo, _ := git.PlainOpen(r.dir)
		if _, err := Verify(repo, Request{From: applied, To: top, Local: local, Cache: c}); err != nil {
			b.Fatal(err)
		}
		run(b, FirstParent, c, fresh)
	})
	b.Run("all", func(b *testing.B) { run(b, All, nil, fresh) })
	b.Run("first-sync-head", func(b *testing.B) {
		for b.Loop() {
			repo, _ := git.PlainOpen(r.dir)
			if _, err := Verify(repo, Request{To: top, Local: local}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
