package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent"
	"github.com/picket-agent/picket/agent/authlog"
	"github.com/picket-agent/picket/agent/logtime"
	"github.com/picket-agent/picket/agent/pipeline"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// picket runs the CLI in-process and returns stdout, stderr, exit code.
func picket(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestHelpEverywhere(t *testing.T) {
	out, _, code := picket(t, "--help")
	if code != exitOK || !strings.Contains(out, "Exit codes:") {
		t.Fatalf("picket --help: %d\n%s", code, out)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("top-level help does not list %s", c.name)
		}
		out, _, code := picket(t, c.name, "--help")
		if code != exitOK || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "--state-dir") {
			t.Errorf("picket %s --help: exit %d\n%s", c.name, code, out)
		}
	}
	if _, _, code := picket(t); code != exitUsage {
		t.Errorf("no command: exit %d, want %d", code, exitUsage)
	}
	if _, errOut, code := picket(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d %q", code, errOut)
	}
	if _, _, code := picket(t, "status", "--no-such-flag"); code != exitUsage {
		t.Errorf("unknown flag: exit %d", code)
	}
	// Global flags before the command name work too.
	if _, errOut, code := picket(t, "--state-dir", t.TempDir(), "status"); code != exitFailure || !strings.Contains(errOut, "has the agent run") {
		t.Errorf("status on an empty state dir: exit %d %q", code, errOut)
	}
}

func TestReplayGolden(t *testing.T) {
	args := []string{"replay", "--auth", "testdata/auth.log", "--web", "testdata/web.log", "--year", "2025", "--tz", "UTC"}
	out, errOut, code := picket(t, append(args, "--json", "--stats")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "replay.jsonl", out)
	out2, _, _ := picket(t, append(args, "--json", "--stats")...)
	if out != out2 {
		t.Fatal("replay output differs between two runs")
	}
	text, _, code := picket(t, args...)
	if code != exitOK {
		t.Fatal(code)
	}
	golden(t, "replay.txt", text)
}

func TestValidate(t *testing.T) {
	out, _, code := picket(t, "validate", "../../examples/config-repo")
	if code != exitOK {
		t.Fatalf("examples/config-repo: exit %d: %s", code, out)
	}
	out, _, code = picket(t, "validate", "--json", "testdata/badrepo")
	if code != exitCheck {
		t.Fatalf("bad repo: exit %d, want %d", code, exitCheck)
	}
	golden(t, "validate-bad.json", out)
	// Each problem alone, in a copy of the example repository.
	for name, edit := range map[string]struct{ file, text, want string }{
		"misordered": {"picket.cue", "\nlevels: aggressive: 40\n", "levels.aggressive"},
		"unknown":    {"picket.cue", "\nlevels: containn: 40\n", "levels.containn"},
		"cidr":       {"whitelists/extra.cue", "whitelist: ips: bad: cidr: \"10.0.0.300/8\"\n", "whitelist.ips.bad.cidr"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, "../../examples/config-repo")
			f, err := os.OpenFile(filepath.Join(dir, edit.file), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(edit.text)
			f.Close()
			out, _, code := picket(t, "validate", dir)
			if code != exitCheck || !strings.Contains(out, edit.file+":") || !strings.Contains(out, edit.want) {
				t.Errorf("exit %d, output %q: want exit %d naming %s and %s", code, out, exitCheck, edit.file, edit.want)
			}
		})
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// fixtureState records the testdata auth log into a state directory through
// the agent's own write path, with a fixed clock, so the read commands have
// deterministic records to print.
func fixtureState(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC)
	pl, err := pipeline.New(pol, pipeline.Options{Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("testdata/auth.log")
	p := &authlog.Parser{Years: logtime.NewYears(time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), time.UTC)}
	for _, line := range strings.Split(string(data), "\n") {
		if ev, err := p.ParseLine(line); err == nil {
			pl.Process(&ev)
		}
	}
	pl.Flush()
	err = st.Update(ctx, func(tx *state.Tx) error {
		if _, err := tx.AppendAudit(ctx, audit.Entry{Time: clock, Kind: audit.KindAgentStart, Subject: "agent", Message: "agent test started"}); err != nil {
			return err
		}
		if err := agent.WriteBatch(ctx, tx, pl.Take()); err != nil {
			return err
		}
		return tx.SetMetaJSON(ctx, agent.MetaPolicy, pol)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadCommandsGolden(t *testing.T) {
	dir := fixtureState(t)
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"incidents.jsonl", []string{"incidents", "--all", "--json"}},
		{"incidents.txt", []string{"incidents", "--all"}},
		{"explain-1.txt", []string{"explain", "1"}},
		{"explain-1.json", []string{"explain", "1", "--json"}},
		{"audit.jsonl", []string{"audit", "--json"}},
		{"audit.txt", []string{"audit"}},
	} {
		out, errOut, code := picket(t, append(c.args, "--state-dir", dir)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", c.args, code, errOut)
		}
		golden(t, c.golden, out)
	}
	if _, _, code := picket(t, "explain", "99", "--state-dir", dir); code != exitFailure {
		t.Errorf("explain of a missing incident: exit %d", code)
	}
	if _, _, code := picket(t, "explain", "abc", "--state-dir", dir); code != exitUsage {
		t.Errorf("explain abc: exit %d", code)
	}
	// Every JSON line is one object of the documented shape.
	out, _, _ := picket(t, "incidents", "--all", "--json", "--state-dir", dir)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "status", "level", "score", "stages", "entities", "signals", "scoring", "plans", "explanation"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("incident record lacks %q", k)
			}
		}
	}
}

func TestAuditVerifyNamesTamperedEntry(t *testing.T) {
	dir := fixtureState(t)
	out, _, code := picket(t, "audit", "verify", "--state-dir", dir)
	if code != exitOK || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("intact: exit %d %q", code, out)
	}
	st, err := state.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`UPDATE audit SET message = 'nothing to see' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, errOut, code := picket(t, "audit", "verify", "--state-dir", dir)
	if code != exitCheck || !strings.Contains(errOut, "entry 3") {
		t.Fatalf("tampered: exit %d, stdout %q, stderr %q: want exit %d naming entry 3", code, out, errOut, exitCheck)
	}
}
