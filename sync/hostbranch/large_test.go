package hostbranch

import (
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/picket-agent/picket/audit"
)

// A day file of tens of thousands of lines: appending a batch stays cheap,
// and so does re-applying it (the indexed path). Timing is logged, not
// asserted (the race detector makes it 15 times slower); about 0.2 s on a
// laptop, mostly zlib on the rewritten blob.
func TestLargeDayFile(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t)
	_, repo := e.bare("r.git")
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	all := chain(audit.Entry{}, 30100, day)
	signer := e.key.GitSigner()
	tip, err := Commit(repo, plumbing.ZeroHash, Batch{Host: "web1", Audit: all[:30000]}, e.sig, signer)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tip2, err := Commit(repo, tip, Batch{Host: "web1", Audit: all[30000:]}, e.sig, signer)
	if err != nil {
		t.Fatal(err)
	}
	append100 := time.Since(start)
	start = time.Now()
	tip3, err := Commit(repo, tip2, Batch{Host: "web1", Audit: all[29900:]}, e.sig, signer)
	if err != nil {
		t.Fatal(err)
	}
	reapply := time.Since(start)
	if tip3 != tip2 {
		t.Error("re-apply made a commit")
	}
	t.Logf("append 100 to a 30000-line file: %v; re-apply: %v", append100, reapply)
}
