package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeJournalctl writes a shell script standing in for journalctl, to test
// the subprocess logic (arguments, catch-up then follow, restarts, bad
// output) without root. The "journal" is dir/entries: line N is the entry
// with cursor cN (or garbage). Every invocation's arguments are appended to
// dir/args. When dir/crash holds N, a follower exits with status 1 right
// after printing entry N (and removes the file), as a crashing journalctl
// would.
func fakeJournalctl(t *testing.T) (bin, dir string) {
	t.Helper()
	dir = t.TempDir()
	script := `#!/bin/sh
D='` + dir + `'
echo "$*" >> "$D/args"
follow=0; cursor=""; lines=""
for a; do
	case "$a" in
	--follow) follow=1 ;;
	--after-cursor=*) cursor="${a#--after-cursor=}" ;;
	--lines=*) lines="${a#--lines=}" ;;
	esac
done
if [ "$cursor" = bogus ]; then echo "Failed to seek to cursor: Invalid argument" >&2; exit 1; fi
total=$(wc -l < "$D/entries")
if [ "$lines" = 1 ]; then tail -n 1 "$D/entries"; exit 0; fi
n=0
if [ -n "$cursor" ]; then n=${cursor#c}; fi
if [ "$follow" = 0 ]; then
	if [ "$total" -gt "$n" ]; then sed -n "$((n+1)),${total}p" "$D/entries"; fi
	exit 0
fi
while :; do
	total=$(wc -l < "$D/entries")
	if [ "$total" -gt "$n" ]; then
		sed -n "$((n+1)),${total}p" "$D/entries"; n=$total
		if [ -e "$D/crash" ] && [ "$n" -ge "$(cat "$D/crash")" ]; then rm -f "$D/crash"; exit 1; fi
	fi
	sleep 0.02
done
`
	bin = filepath.Join(dir, "journalctl")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "entries"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// addEntries appends entries; a name starting with "!" is a garbage line.
func addEntries(t *testing.T, dir string, msgs ...string) {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(dir, "entries"))
	n := strings.Count(string(data), "\n")
	var b strings.Builder
	for _, m := range msgs {
		n++
		if strings.HasPrefix(m, "!") {
			b.WriteString(m + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"__CURSOR":"c%d","SYSLOG_IDENTIFIER":"sshd","_PID":"%d","MESSAGE":%q,"__REALTIME_TIMESTAMP":"1700000000000000"}`+"\n", n, 100+n, m)
	}
	fh, err := os.OpenFile(filepath.Join(dir, "entries"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(b.String())
	fh.Close()
}

func readArgs(dir string) []string {
	data, _ := os.ReadFile(filepath.Join(dir, "args"))
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

type readerHarness struct {
	t       *testing.T
	r       *Reader
	entries chan Entry
	cancel  context.CancelFunc
	done    chan error
}

func startReader(t *testing.T, r *Reader) *readerHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &readerHarness{t: t, r: r, entries: make(chan Entry, 1000), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- r.Run(ctx, func(e Entry) error { h.entries <- e; return nil }) }()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *readerHarness) stop() error {
	h.t.Helper()
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after cancel")
		return nil
	}
}

// expect receives entries with exactly these messages, in order.
func (h *readerHarness) expect(msgs ...string) []Entry {
	h.t.Helper()
	var got []Entry
	for _, want := range msgs {
		select {
		case e := <-h.entries:
			if e.Message != want {
				h.t.Fatalf("entry %d: got %q (%+v), want %q", len(got), e.Message, e, want)
			}
			got = append(got, e)
		case <-time.After(15 * time.Second):
			h.t.Fatalf("timeout waiting for %q; got %+v", want, got)
		}
	}
	return got
}

func (h *readerHarness) expectNothing(d time.Duration) {
	h.t.Helper()
	select {
	case e := <-h.entries:
		h.t.Fatalf("unexpected entry %+v", e)
	case <-time.After(d):
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReaderFakeJournalctl(t *testing.T) {
	bin, dir := fakeJournalctl(t)
	addEntries(t, dir, "old1", "old2")
	h := startReader(t, &Reader{Journalctl: bin, Directory: "/some/dir", Identifiers: []string{"sshd", "sshd-session"}})
	waitUntil(t, "follower started", func() bool { return strings.Contains(strings.Join(readArgs(dir), "\n"), "--follow") })

	addEntries(t, dir, "new3", "!garbage", "new5")
	got := h.expect("new3", "new5")
	if got[0].Cursor != "c3" || got[0].PID != 103 || got[0].Identifier != "sshd" {
		t.Fatalf("entry %+v", got[0])
	}

	// journalctl crashes after its next batch: restarted from the last
	// cursor, catch-up first, nothing lost or repeated.
	os.WriteFile(filepath.Join(dir, "crash"), []byte("6"), 0o644)
	addEntries(t, dir, "new6")
	h.expect("new6")
	// Written while journalctl is dead (the restart waits 0.5 s): read by
	// the catch-up run.
	addEntries(t, dir, "new7")
	h.expect("new7")
	waitUntil(t, "follower restarted", func() bool { return len(readArgs(dir)) == 5 })
	addEntries(t, dir, "new8")
	h.expect("new8")
	h.expectNothing(100 * time.Millisecond)

	if err := h.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	s := h.r.Stats()
	if s.Entries != 5 || s.BadLines != 1 || s.Restarts != 1 {
		t.Fatalf("stats %+v", s)
	}
	base := "--output=json --no-pager --all --quiet --directory=/some/dir"
	ids := " --identifier=sshd --identifier=sshd-session"
	want := []string{
		base + " --lines=1",                        // anchor at the end
		base + ids + " --after-cursor=c2",          // catch up
		base + ids + " --follow --after-cursor=c2", // follow
		base + ids + " --after-cursor=c6",          // after the crash: catch up
		base + ids + " --follow --after-cursor=c7", // and follow
	}
	if args := readArgs(dir); strings.Join(args, "\n") != strings.Join(want, "\n") {
		t.Fatalf("invocations:\n%s\nwant:\n%s", strings.Join(args, "\n"), strings.Join(want, "\n"))
	}
}

func TestReaderResumeAndEmptyJournal(t *testing.T) {
	bin, dir := fakeJournalctl(t)
	// Empty journal: no anchor cursor, everything that comes is new.
	h := startReader(t, &Reader{Journalctl: bin})
	waitUntil(t, "follower started", func() bool { return strings.Contains(strings.Join(readArgs(dir), "\n"), "--follow") })
	addEntries(t, dir, "e1", "e2", "e3")
	got := h.expect("e1", "e2", "e3")
	h.stop()

	// Resume after e2's cursor.
	h2 := startReader(t, &Reader{Journalctl: bin, Cursor: got[1].Cursor})
	h2.expect("e3")
	addEntries(t, dir, "e4")
	h2.expect("e4")
	h2.expectNothing(100 * time.Millisecond)
}

func TestReaderBadCursor(t *testing.T) {
	bin, dir := fakeJournalctl(t)
	addEntries(t, dir, "old")
	h := startReader(t, &Reader{Journalctl: bin, Cursor: "bogus"})
	waitUntil(t, "follower started", func() bool { return strings.Contains(strings.Join(readArgs(dir), "\n"), "--follow") })
	addEntries(t, dir, "new")
	h.expect("new")
	if s := h.r.Stats(); s.Restarts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReaderEmitError(t *testing.T) {
	bin, dir := fakeJournalctl(t)
	addEntries(t, dir, "a", "b")
	boom := errors.New("boom")
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := (&Reader{Journalctl: bin, Cursor: "c0"}).Run(ctx, func(Entry) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Run = %v after %d entries", err, n)
	}
}

func TestReaderMissingBinaryRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	r := &Reader{Journalctl: filepath.Join(t.TempDir(), "nope")}
	err := r.Run(ctx, func(Entry) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v", err)
	}
	// 0.5 s then 1 s: two or three attempts, not a spin.
	if s := r.Stats(); s.Restarts < 1 || s.Restarts > 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReadLinesTooLong(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	in := "a\n" + long + "\n\nb"
	var got []string
	tooLong := 0
	err := readLines(strings.NewReader(in), func(l []byte) error { got = append(got, string(l)); return nil }, func() { tooLong++ })
	if err != nil || strings.Join(got, ",") != "a,b" || tooLong != 1 {
		t.Fatalf("got %d lines (first 10 bytes each: %q), tooLong %d, err %v", len(got), first10(got), tooLong, err)
	}
	// Exactly maxLine (plus its newline) is still accepted.
	got, tooLong = nil, 0
	readLines(strings.NewReader(long[:maxLine]+"\nb\n"), func(l []byte) error { got = append(got, string(l)); return nil }, func() { tooLong++ })
	if len(got) != 2 || len(got[0]) != maxLine || tooLong != 0 {
		t.Fatalf("got %d lines, tooLong %d", len(got), tooLong)
	}
}

func first10(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s[:min(10, len(s))])
	}
	return out
}

func TestAvailableFake(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755)
		return p
	}
	ok := script("ok", `echo '{"__CURSOR":"s=1","MESSAGE":"x"}'`)
	empty := script("empty", `exit 0`)
	fails := script("fails", `echo 'Failed to open' >&2; exit 1`)
	partial := script("partial", `echo '{"__CURSOR":"s=1"}'; echo 'Hint: You are currently not seeing messages from other users and the system.' >&2`)
	ctx := context.Background()
	if err := Available(ctx, ok); err != nil {
		t.Fatalf("ok: %v", err)
	}
	for _, bin := range []string{empty, fails, partial, filepath.Join(dir, "missing")} {
		if err := Available(ctx, bin); err == nil {
			t.Errorf("%s: want error", filepath.Base(bin))
		} else {
			t.Logf("%s: %v", filepath.Base(bin), err)
		}
	}
}
