package procname

import (
	"testing"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/schema"
)

func policyLists(t *testing.T) *schema.Processes {
	t.Helper()
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	return &p.Processes
}

func a(pid int, comm, exe string, args ...string) event.Ancestor {
	return event.Ancestor{PID: pid, Comm: comm, Exe: exe, Args: args}
}

var (
	initP  = a(1, "systemd", "/usr/lib/systemd/systemd", "/sbin/init")
	sshd   = a(800, "sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D")
	priv   = a(900, "sshd", "/usr/sbin/sshd", "sshd: dev [priv]")
	login  = a(1000, "bash", "/usr/bin/bash", "-bash")
	tmux   = a(1500, "tmux: server", "/usr/bin/tmux", "tmux", "new", "-s", "work")
	win    = a(1501, "bash", "/usr/bin/bash", "bash")
	nginx  = a(812, "nginx", "/usr/sbin/nginx", "nginx: master process")
	fpm    = a(1201, "php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")
	script = a(2000, "bash", "/usr/bin/bash", "bash", "./deploy.sh")
)

// TestSessionDepth: the session is the contiguous run from the top of the
// lineage; everything below it is the process's own tree.
func TestSessionDepth(t *testing.T) {
	s := NewSession(policyLists(t))
	for _, c := range []struct {
		name    string
		lineage []event.Ancestor // parent first
		want    int
	}{
		{"login shell below sshd", []event.Ancestor{login, priv, sshd, initP}, 0},
		{"go below a tmux window", []event.Ancestor{a(3000, "go", "/usr/bin/go", "go", "test"), win, tmux, initP}, 1},
		{"a script run from the login shell", []event.Ancestor{script, login, priv, sshd, initP}, 1},
		{"a shell below php-fpm", []event.Ancestor{a(4410, "sh", "/usr/bin/dash", "sh", "-c", "id"), fpm, nginx, initP}, 3},
		{"tmux started by the attacker below php-fpm", []event.Ancestor{win, tmux, fpm, initP}, 3},
		{"an 'sshd' run from /tmp is no session", []event.Ancestor{a(700, "sshd", "/tmp/.x/sshd"), initP}, 1},
		{"a memfd runner below init", []event.Ancestor{a(13683, "memfd:sealed-91", "/memfd:sealed-91173221a7ea"), initP}, 1},
		{"container init below the shim", []event.Ancestor{a(7100, "sh", "/bin/busybox", "sh"), a(7000, "containerd-shim", "/usr/bin/containerd-shim-runc-v2"), initP}, 0},
		{"unknown top", []event.Ancestor{win, a(77, "unknown", "/opt/x")}, 2},
		{"sudo -i from the login shell", []event.Ancestor{a(2300, "bash", "/usr/bin/bash", "-bash"), a(2200, "sudo", "/usr/bin/sudo", "sudo", "-i"), login, priv, sshd, initP}, 0},
		{"no lineage", nil, 0},
	} {
		if got := s.Depth(c.lineage); got != c.want {
			t.Errorf("%s: Depth = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestInteractive(t *testing.T) {
	for _, c := range []struct {
		args []string
		exe  string
		want bool
	}{
		{[]string{"-bash"}, "/usr/bin/bash", true},
		{[]string{"bash"}, "/usr/bin/bash", true},
		{[]string{"zsh", "-l"}, "/usr/bin/zsh", true},
		{[]string{"bash", "--login", "-i"}, "/usr/bin/bash", true},
		{[]string{"sh"}, "/bin/busybox", true}, // through the /bin/sh symlink
		{[]string{"busybox", "sh"}, "/bin/busybox", true},
		{[]string{"busybox"}, "/bin/busybox", false},
		{[]string{"busybox", "sh", "-c", "id"}, "/bin/busybox", false},
		{[]string{"bash", "-c", "make"}, "/usr/bin/bash", false},
		{[]string{"bash", "-ec", "make"}, "/usr/bin/bash", false},
		{[]string{"sh", "-s"}, "/usr/bin/dash", false},
		{[]string{"bash", "/dev/fd/3"}, "/usr/bin/bash", false},
		{[]string{"bash", "./deploy.sh"}, "/usr/bin/bash", false},
		{[]string{"bash", "-"}, "/usr/bin/bash", false},
		{nil, "/usr/bin/bash", false},
	} {
		if got := Interactive(c.args); got != c.want {
			t.Errorf("Interactive(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestRuntimes(t *testing.T) {
	r := NewRuntimes(policyLists(t))
	shim := a(7000, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby")
	runc := a(7001, "runc", "/usr/sbin/runc", "runc", "create")
	p := func(exe string, lineage ...event.Ancestor) *event.Process {
		return &event.Process{PID: 7003, Comm: "6", Exe: exe, Deleted: true, Args: []string{"runc", "init"}, Lineage: lineage}
	}
	for _, c := range []struct {
		name string
		p    *event.Process
		want string
	}{
		{"runc init below runc", p("/memfd:runc_cloned:/proc/self/exe", runc, shim, initP), "/memfd:runc*"},
		{"runc init below the shim", p("/memfd:runc_cloned:/proc/self/exe", shim, initP), "/memfd:runc*"},
		{"crun below conmon", p("/memfd:crun", a(600, "conmon", "/usr/bin/conmon"), initP), "/memfd:crun*"},
		{"systemd-executor", p("/usr/lib/systemd/systemd-executor", initP), "/usr/lib/systemd/systemd-executor"},
		{"runc's memfd below a shell", p("/memfd:runc_cloned:/proc/self/exe", login, initP), ""},
		{"below a runc that is itself a memfd", p("/memfd:runc_cloned:/proc/self/exe", a(7001, "runc", "/memfd:runc_cloned:/proc/self/exe"), initP), ""},
		{"below a runc in /tmp", p("/memfd:runc_cloned:/proc/self/exe", a(7001, "runc", "/tmp/runc"), initP), ""},
		{"a sealed memfd below the shim", p("/memfd:sealed-1", shim, initP), ""},
		{"no lineage", p("/memfd:runc_cloned:/proc/self/exe"), ""},
	} {
		if got := r.Match(c.p); got != c.want {
			t.Errorf("%s: Match = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSessionParent(t *testing.T) {
	s := NewSession(policyLists(t))
	for _, c := range []struct {
		name string
		p    event.Process
		pid  int
		ok   bool
	}{
		{"below a login shell", event.Process{PID: 3, PPID: 1000, Lineage: []event.Ancestor{login, priv, sshd, initP}}, 1000, false},
		{"below a script", event.Process{PID: 3, PPID: 2000, Lineage: []event.Ancestor{script, login, priv, sshd, initP}}, 2000, true},
		{"below init", event.Process{PID: 3, PPID: 1, Lineage: []event.Ancestor{initP}}, 1, false},
		{"lineage unknown", event.Process{PID: 3, PPID: 77}, 77, true},
		{"nothing known", event.Process{PID: 3, PPID: 1}, 0, false},
	} {
		if pid, ok := s.Parent(&c.p); pid != c.pid || ok != c.ok {
			t.Errorf("%s: Parent = %d, %v; want %d, %v", c.name, pid, ok, c.pid, c.ok)
		}
	}
}
