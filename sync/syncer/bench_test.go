package syncer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/internal/gittest"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// BenchmarkIncrementalSync is the figure of issue 3 that `make bench`
// reports: one sync cycle (fetch over HTTP from the real `git http-backend`,
// first-parent signature verification, CUE validation, apply, push of the
// cycle's audit entry to hosts/<hostname>) on a config repository with 5,000
// commits of history, after 200 new SSH-signed commits that change a
// threshold. Targets: under 1 s and under 100 MB peak RSS.
//
// Setup (untimed): the example config repository's files, 4,999 commits of
// history written with git fast-import (each changes a threshold in
// picket.cue, so the files stay valid everywhere), the 5,000th commit signed
// with `git commit -S` (gpg.format=ssh, a key made by ssh-keygen), an initial
// sync that applies it, then 200 signed commits pushed to the remote. The
// state directory after the initial sync is the template: each iteration
// syncs from a fresh copy of it (and the remote's host branch is reset), so
// every iteration does the same incremental sync. Copying and opening are
// outside the timer; the timed part is exactly one Once.
//
// Reported: ms/sync (mean of the timed Once calls), max-ms/sync, and peak-MB:
// the process's peak RSS (VmHWM) during a sync, the peak being reset
// (/proc/self/clear_refs) just before each timed Once; base-MB is the RSS at
// that point.
func BenchmarkIncrementalSync(b *testing.B) {
	const (
		history   = 5000 // commits before the applied revision, the applied one included
		fresh     = 200  // new signed commits
		benchHost = "web1"
	)
	integration.Binary(b, "git")
	kg := integration.Binary(b, "ssh-keygen")
	start := time.Now()
	ctx := context.Background()

	// Signing key and the local trust root.
	keyDir := b.TempDir()
	keyPath := filepath.Join(keyDir, "maintainer")
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", "maintainer", "-f", keyPath).CombinedOutput(); err != nil {
		b.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		b.Fatal(err)
	}
	pf := strings.Fields(string(pub))
	trustDir := b.TempDir()
	line := fmt.Sprintf("maintainer@example.com namespaces=\"git\" %s %s\n", pf[0], pf[1])
	if err := os.WriteFile(filepath.Join(trustDir, "allowed_signers"), []byte(line), 0o644); err != nil {
		b.Fatal(err)
	}
	sign := []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyPath, "-S"}

	// The example config repository's files; picket.cue is a template whose
	// two thresholds change along the history.
	files := benchExampleFiles(b)
	policy := files["picket.cue"]
	delete(files, "picket.cue")
	for _, s := range []string{"max_failures: 5\n", "max_per_hour: 30\n"} {
		if strings.Count(policy, s) != 1 {
			b.Fatalf("examples/config-repo/picket.cue: want exactly one %q", s)
		}
	}
	policyAt := func(maxFailures, maxPerHour int) string {
		p := strings.Replace(policy, "max_failures: 5\n", fmt.Sprintf("max_failures: %d\n", maxFailures), 1)
		return strings.Replace(p, "max_per_hour: 30\n", fmt.Sprintf("max_per_hour: %d\n", maxPerHour), 1)
	}

	// History: 4,999 unsigned commits by fast-import, then the signed 5,000th.
	work := gittest.NewRepo(b)
	var stream bytes.Buffer
	for i := 1; i < history; i++ {
		msg := fmt.Sprintf("history %d: max_per_hour\n", i)
		fmt.Fprintf(&stream, "commit refs/heads/main\nmark :%d\ncommitter Maintainer <maintainer@example.com> %d +0000\ndata %d\n%s",
			i, 1600000000+i*3600, len(msg), msg)
		if i > 1 {
			fmt.Fprintf(&stream, "from :%d\n", i-1)
		} else {
			for _, name := range slices.Sorted(maps.Keys(files)) {
				fmt.Fprintf(&stream, "M 100644 inline %s\ndata %d\n%s\n", name, len(files[name]), files[name])
			}
		}
		p := policyAt(5, 10+i%90)
		fmt.Fprintf(&stream, "M 100644 inline picket.cue\ndata %d\n%s\n", len(p), p)
	}
	stream.WriteString("done\n")
	if _, err := work.GitInput(stream.Bytes(), "fast-import", "--quiet", "--done"); err != nil {
		b.Fatalf("git fast-import: %v", err)
	}
	work.Git(b, "reset", "-q", "--hard", "main")
	applied := work.Commit(b, map[string]string{"picket.cue": policyAt(5, 30)}, "history 5000: signed", sign...)
	if n := work.Git(b, "rev-list", "--count", "main"); n != strconv.Itoa(history) {
		b.Fatalf("history has %s commits, want %d", n, history)
	}

	// The remote: a bare repository served by git http-backend.
	root := b.TempDir()
	bare := gittest.NewBareRepo(b, filepath.Join(root, "config.git"))
	work.Git(b, "push", "-q", bare.Dir, "main")
	srv := gittest.ServeHTTP(b, root, gittest.ServerOptions{})
	url := srv.URL("config.git")

	boot := schema.BootstrapDefault()
	boot.Hostname = benchHost
	boot.Repository.URL = url
	boot.Repository.Branch = "main"
	boot.Repository.Verify = "first-parent"
	boot.Repository.HostKey = filepath.Join(b.TempDir(), "host_key")
	boot.TrustDir = trustDir
	boot.Credentials = ""
	boot.Repository.KnownHosts = ""

	var got struct {
		rev         string
		maxFailures int
	}
	open := func(dir string) (*Syncer, *state.Store) {
		b.Helper()
		st, err := state.Open(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Config{Hostname: benchHost, Bootstrap: boot, StateDir: dir, Store: st,
			Apply: func(_ context.Context, p *schema.Policy, rev, _ string) error {
				got.rev, got.maxFailures = rev, p.Detectors.SSHBruteForce.MaxFailures
				return nil
			}})
		if err != nil {
			st.Close()
			b.Fatal(err)
		}
		return s, st
	}

	// Initial sync: the full history is fetched, the signed 5,000th applied.
	template := filepath.Join(b.TempDir(), "state")
	s, st := open(template)
	t0 := time.Now()
	rep, err := s.Once(ctx)
	if err != nil || rep.Applied != applied || got.maxFailures != 5 {
		b.Fatalf("initial sync: %+v, %v (applied %s with max_failures %d; want %s)", rep, err, got.rev, got.maxFailures, applied)
	}
	initial := time.Since(t0)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	hostRef := "refs/heads/hosts/" + benchHost
	hostTip := bare.Git(b, "rev-parse", "--verify", hostRef)

	// 200 new signed commits, each changing a threshold, pushed at once.
	var top string
	want := 0
	for i := 0; i < fresh; i++ {
		want = 6 + i%20
		top = work.Commit(b, map[string]string{"picket.cue": policyAt(want, 30)}, fmt.Sprintf("max_failures %d", want), sign...)
	}
	work.Git(b, "push", "-q", bare.Dir, "main")
	b.Logf("setup: %d+%d commits, served at %s, in %v (initial sync of the full history: %v)",
		history, fresh, url, time.Since(start).Round(time.Millisecond), initial.Round(time.Millisecond))

	_, canReset := benchResetPeak()
	if !canReset {
		b.Log("/proc/self/clear_refs not writable: peak-MB includes the setup's peak")
	}
	var total, slowest time.Duration
	var peakKB, baseKB int64
	runs := 0
	iterRoot := b.TempDir()
	for b.Loop() {
		// Untimed: a fresh copy of the post-initial-sync state, the remote's
		// host branch back where the template left it, the Syncer opened.
		b.StopTimer()
		runs++
		dir := filepath.Join(iterRoot, strconv.Itoa(runs))
		if err := os.CopyFS(dir, os.DirFS(template)); err != nil {
			b.Fatal(err)
		}
		bare.Git(b, "update-ref", hostRef, hostTip)
		s, st := open(dir)
		got.rev, got.maxFailures = "", 0
		runtime.GC()
		debug.FreeOSMemory()
		base, _ := benchResetPeak()
		baseKB = max(baseKB, base)

		b.StartTimer()
		t0 := time.Now()
		rep, err := s.Once(ctx)
		d := time.Since(t0)
		b.StopTimer()

		peakKB = max(peakKB, benchProcStatus("VmHWM"))
		total += d
		slowest = max(slowest, d)
		if err != nil || rep.Applied != top || rep.Rejected != nil || rep.Pushed < 1 || got.rev != top || got.maxFailures != want {
			b.Fatalf("incremental sync: %+v, %v (applied %s with max_failures %d; want %s with %d)",
				rep, err, got.rev, got.maxFailures, top, want)
		}
		if runs == 1 {
			_ = st.EachAudit(ctx, state.AuditFilter{Kind: audit.KindConfigApplied}, func(e audit.Entry) error {
				if e.Subject == "config:"+top {
					b.Logf("audit: %s", e.Message)
				}
				return nil
			})
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	if runs == 0 {
		return
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(runs), "ms/sync")
	b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms/sync")
	if peakKB > 0 {
		b.ReportMetric(float64(peakKB)/1024, "peak-MB")
		b.ReportMetric(float64(baseKB)/1024, "base-MB")
	}
}

// benchExampleFiles reads the example config repository: picket.cue,
// whitelists/*.cue, hosts/*.cue and trust/allowed_signers.
func benchExampleFiles(b *testing.B) map[string]string {
	b.Helper()
	const dir = "../../examples/config-repo"
	files := map[string]string{}
	var names []string
	for _, pat := range []string{"picket.cue", "whitelists/*.cue", "hosts/*.cue", "trust/allowed_signers"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil || len(m) == 0 {
			b.Fatalf("%s/%s: nothing found (%v)", dir, pat, err)
		}
		names = append(names, m...)
	}
	for _, p := range names {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(data)
	}
	return files
}

// benchResetPeak resets the process's peak RSS (VmHWM) to its current RSS
// where the kernel allows it, and returns the current RSS in kB.
func benchResetPeak() (int64, bool) {
	ok := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	return benchProcStatus("VmRSS"), ok
}

// benchProcStatus returns a "kB" field of /proc/self/status, 0 if absent.
func benchProcStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return v
	}
	return 0
}
