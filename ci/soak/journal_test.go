package soak

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// action is one line of `picket actions --all --json`.
type action struct {
	ID       int64     `json:"id"`
	Incident int64     `json:"incident"`
	Kind     string    `json:"kind"`
	Target   string    `json:"target"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Applied  time.Time `json:"applied"`
	Reason   string    `json:"reason"`
	Note     string    `json:"note"`
}

// incident is the part of `picket incidents --json` the report shows.
type incident struct {
	ID      int64   `json:"id"`
	Level   string  `json:"level"`
	Score   float64 `json:"score"`
	Signals []struct {
		Time   time.Time `json:"time"`
		Rule   string    `json:"rule"`
		Weight float64   `json:"weight"`
		Reason string    `json:"reason"`
	} `json:"signals"`
}

// notActing are the journal statuses of a plan that changed nothing on
// the host: held back (learning period, observe, breaker, a policy that
// wants more corroboration) or refused by a guard. Every other status —
// applying, applied, done, expired, rolled back, failed, and any status
// this list does not know (a plan still queued) — is an action against
// the host, which a benign host must never see.
var notActing = []string{"suppressed", "refused"}

// acting reports whether the journal line a is an action taken (or under
// way) against the host.
func acting(a action) bool { return !slices.Contains(notActing, a.Status) }

func parseLines[T any](out string) ([]T, error) {
	var list []T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return nil, fmt.Errorf("%w in %.200q", err, line)
		}
		list = append(list, v)
	}
	return list, sc.Err()
}

// describe says what an action was and which rules raised its incident,
// for the engineers who must make it go away.
func describe(a action, incs map[int64]incident) string { return describeOnce(a, incs, nil) }

// describeOnce is describe that details each incident only the first time
// (shown remembers; nil details every time).
func describeOnce(a action, incs map[int64]incident, shown map[int64]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "action %d %s %s: %s (created %s)", a.ID, a.Kind, a.Target, a.Status, a.Created.Format("15:04:05.000"))
	if a.Reason != "" {
		fmt.Fprintf(&b, "\n    reason: %s", clip(a.Reason, 400))
	}
	if a.Note != "" {
		fmt.Fprintf(&b, "\n    note: %s", clip(a.Note, 300))
	}
	inc, ok := incs[a.Incident]
	if !ok {
		fmt.Fprintf(&b, "\n    incident %d: not found", a.Incident)
		return b.String()
	}
	fmt.Fprintf(&b, "\n    incident %d: level %s, score %g, rules %s", inc.ID, inc.Level, inc.Score, strings.Join(ruleCounts(inc), ", "))
	if shown != nil {
		if shown[inc.ID] {
			return b.String()
		}
		shown[inc.ID] = true
	}
	for i, s := range inc.Signals {
		if i == 6 {
			fmt.Fprintf(&b, "\n      … %d more signals", len(inc.Signals)-i)
			break
		}
		fmt.Fprintf(&b, "\n      %s %s (%g): %s", s.Time.Format("15:04:05.000"), s.Rule, s.Weight, clip(s.Reason, 300))
	}
	return b.String()
}

// ruleCounts lists an incident's rules with how many signals each gave,
// in the order they first appeared.
func ruleCounts(inc incident) []string {
	var order []string
	n := map[string]int{}
	for _, s := range inc.Signals {
		if n[s.Rule] == 0 {
			order = append(order, s.Rule)
		}
		n[s.Rule]++
	}
	out := make([]string, len(order))
	for i, r := range order {
		out[i] = r + "×" + strconv.Itoa(n[r])
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// progress is what a workload recorded: steps that succeeded after a
// time, and the failures.
type progress struct {
	OK       int
	Failures []string
	Done     bool
}

// parseProgress reads a progress/<loop>.log ("<epoch> ok", "<epoch> FAIL
// …", "<epoch> done"; cron's job also writes "<epoch> start") and counts
// the ok steps at or after since. A cron job that started and never said
// ok (killed mid-way) is a failure once a later job started or the file
// ends more than grace after it.
func parseProgress(text string, since, now time.Time, grace time.Duration) progress {
	var p progress
	var openStart time.Time
	for line := range strings.SplitSeq(text, "\n") {
		ts, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, int64(sec*1e9))
		switch {
		case rest == "ok":
			if !at.Before(since) {
				p.OK++
			}
			openStart = time.Time{}
		case rest == "done":
			p.Done = true
		case rest == "start":
			if !openStart.IsZero() {
				p.Failures = append(p.Failures, "job started at "+openStart.Format("15:04:05")+" never finished")
			}
			openStart = at
		case strings.HasPrefix(rest, "FAIL"):
			p.Failures = append(p.Failures, at.Format("15:04:05.000")+" "+rest)
		}
	}
	if !openStart.IsZero() && now.Sub(openStart) > grace {
		p.Failures = append(p.Failures, "job started at "+openStart.Format("15:04:05")+" never finished")
	}
	return p
}

func TestActing(t *testing.T) {
	for status, want := range map[string]bool{"suppressed": false, "refused": false, "applied": true, "done": true,
		"applying": true, "expired": true, "rolled-back": true, "failed": true, "rollback-requested": true, "planned": true} {
		if got := acting(action{Status: status}); got != want {
			t.Errorf("acting(%q) = %v, want %v", status, got, want)
		}
	}
}

func TestParseProgress(t *testing.T) {
	base := time.Unix(1700000000, 0)
	text := "1699999990.5 ok\n1700000001.25 ok\n1700000002 FAIL rc=137: docker run\n1700000003 ok\n" +
		"1700000004 start\n1700000005 start\n1700000006 ok\n1700000007 done\nnoise\n"
	p := parseProgress(text, base, base.Add(10*time.Second), time.Minute)
	if p.OK != 3 || !p.Done {
		t.Errorf("ok %d done %v, want 3 true", p.OK, p.Done)
	}
	if len(p.Failures) != 2 || !strings.Contains(p.Failures[0], "rc=137") || !strings.Contains(p.Failures[1], "never finished") {
		t.Errorf("failures %q", p.Failures)
	}
	// A job still running within its grace is not a failure yet.
	if p := parseProgress("1700000004 start\n", base, base.Add(10*time.Second), time.Minute); len(p.Failures) != 0 {
		t.Errorf("running job reported: %q", p.Failures)
	}
	if p := parseProgress("1700000004 start\n", base, base.Add(2*time.Minute), time.Minute); len(p.Failures) != 1 {
		t.Errorf("stuck job not reported: %q", p.Failures)
	}
}

func TestDescribe(t *testing.T) {
	incs := map[int64]incident{7: {ID: 7, Level: "contain", Score: 50}}
	inc := incs[7]
	inc.Signals = append(inc.Signals, struct {
		Time   time.Time `json:"time"`
		Rule   string    `json:"rule"`
		Weight float64   `json:"weight"`
		Reason string    `json:"reason"`
	}{Rule: "process.exec_deleted", Weight: 50, Reason: "runc init from memfd"})
	incs[7] = inc
	got := describe(action{ID: 3, Incident: 7, Kind: "kill-tree", Target: "pid:42", Status: "done"}, incs)
	for _, want := range []string{"action 3 kill-tree pid:42: done", "incident 7: level contain", "process.exec_deleted×1", "runc init from memfd"} {
		if !strings.Contains(got, want) {
			t.Errorf("describe lacks %q:\n%s", want, got)
		}
	}
}
