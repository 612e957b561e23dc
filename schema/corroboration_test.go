package schema

import (
	"slices"
	"testing"
	"testing/fstest"
)

// TestCorroborationDefaults: the destructive actions need corroboration by
// default; an entry a repository adds or changes keeps the defaults of the
// fields it does not set.
func TestCorroborationDefaults(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kill-tree", "disable-user", "end-sessions", "isolate-container"} {
		c, ok := p.Actions.CorroborationOf(name)
		if !ok || c.MinRules != 2 || !c.IsStrong("process.reverse_shell") || c.IsStrong("process.exec_tmp") {
			t.Errorf("%s: %+v, %v", name, c, ok)
		}
	}
	for _, name := range []string{"block-source", "block-destination", "rate-limit", "containment"} {
		if _, ok := p.Actions.CorroborationOf(name); ok {
			t.Errorf("%s needs corroboration by default", name)
		}
	}
	if w := p.Detectors.ProcessInvariants; w.ExecTmpWeight >= p.Levels.Contain || w.ExecDeletedWeight >= p.Levels.Contain || w.ExecMemfdWeight >= p.Levels.Contain {
		t.Errorf("a heuristic weight reaches contain (%v) alone: %+v", p.Levels.Contain, w)
	}
	if !slices.Contains(p.Processes.Sessions, "tmux*") || len(p.Processes.KnownRuntimes) == 0 {
		t.Errorf("process lists: %v %v", p.Processes.Sessions, p.Processes.KnownRuntimes)
	}

	p, err = LoadFS(fstest.MapFS{"picket.cue": {Data: []byte(`actions: corroboration: {
	"kill-tree": min_rules: 3
	"pause-ssh": {}
}
`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	kt := p.Actions.Corroboration["kill-tree"]
	es, ok := p.Actions.CorroborationOf("pause-ssh")
	if kt.MinRules != 3 || !kt.IsStrong("process.web_shell") || !ok || es.MinRules != 2 || len(es.Strong) != 5 {
		t.Fatalf("merged: kill-tree %+v, pause-ssh %+v", kt, es)
	}
}

func TestHeuristic(t *testing.T) {
	for rule, want := range map[string]bool{
		"process.exec_tmp": true, "process.exec_memfd": true, "process.exec_deleted": true, "baseline.new_process": true,
		"process.reverse_shell": false, "ssh.bruteforce": false, "net.new_listener": false,
	} {
		if Heuristic(rule) != want {
			t.Errorf("Heuristic(%s) = %v", rule, !want)
		}
	}
}
