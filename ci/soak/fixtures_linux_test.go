package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The soak host's files: the private root (a copy of /etc and what the
// daemons need), the daemons' configs, the packages of the update churn
// and the Go module the builds compile.

// makePrivateRoot copies /etc (without password hashes) and adds what the
// host runs: cron's tables, sshd's authorized key, the web root, an empty
// dpkg database for the package churn, the unit directory it fills.
func (h *host) makePrivateRoot() {
	t := h.t
	if err := os.MkdirAll(h.priv, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "-a", "/etc", filepath.Join(h.priv, "etc"))
	h.write(filepath.Join(h.priv, "etc/shadow"), sanitizedShadow(t), 0o640)
	_ = os.Remove(filepath.Join(h.priv, "etc/gshadow"))
	// The machine's own sshd host keys stay where they are (the test's
	// sshd has a key of its own).
	keys, _ := filepath.Glob(filepath.Join(h.priv, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		_ = os.Remove(k)
	}
	// Only the soak's cron jobs: nothing of the machine's own runs here.
	cronD := filepath.Join(h.priv, "etc/cron.d")
	_ = os.RemoveAll(cronD)
	if err := os.MkdirAll(cronD, 0o755); err != nil {
		t.Fatal(err)
	}
	h.write(filepath.Join(h.priv, "etc/crontab"), "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\nMAILTO=\"\"\n"+
		"* * * * * root /bin/sh /etc/soak/cron-job.sh\n", 0o644)
	h.write(filepath.Join(cronD, "soak-stats"), "MAILTO=\"\"\n"+
		"* * * * * root for i in 1 2 3 4 5; do cat /proc/loadavg >>/var/log/soak-stats.log; sleep 2; done\n", 0o644)
	h.write(filepath.Join(h.priv, "etc/soak/cron-job.sh"), fmt.Sprintf(`#!/bin/sh
# A nightly-style job, every minute here: archive a few config files, trim
# old archives, record that it ran (start and ok: a kill leaves only start).
echo "$(date +%%s) start" >>%[1]s/progress/cron.log
tar -czf %[1]s/backup/etc-$(date +%%s).tgz -C /etc ssh/sshd_config passwd group crontab 2>/dev/null
find %[1]s/backup -name '*.tgz' -mmin +2 -delete
du -s /var/log >/dev/null
echo "$(date +%%s) ok" >>%[1]s/progress/cron.log
`, h.dir), 0o755)
	pub := h.adminKeypair()
	h.write(filepath.Join(h.priv, "etc/ssh/authorized_keys/root"), pub, 0o644)
	// A developer's account: logs in over ssh from an ordinary address.
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev@soak", "-f", h.path("ssh/dev_key"))
	devPub, err := os.ReadFile(h.path("ssh/dev_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	h.write(filepath.Join(h.priv, "etc/ssh/authorized_keys/dev"), string(devPub), 0o644)
	h.mkdir("home/dev", 0o755)
	if err := os.Chown(h.path("home/dev"), 1500, 1500); err != nil {
		t.Fatal(err)
	}
	for file, line := range map[string]string{"passwd": "dev:x:1500:1500:Developer:" + h.path("home/dev") + ":/bin/bash",
		"group": "dev:x:1500:", "shadow": "dev:*:19000:0:99999:7:::"} {
		f, err := os.OpenFile(filepath.Join(h.priv, "etc", file), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	spool := filepath.Join(h.priv, "var/spool/cron/crontabs")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(spool, 0o1730|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(h.priv, "var/www/html")
	h.write(filepath.Join(www, "index.html"), "<html><body>soak</body></html>\n", 0o644)
	h.write(filepath.Join(www, "app.php"), "<?php echo 'now: ' . date('c') . \"\\n\"; ?>\n", 0o644)
	// The application's hole the attack goes through at the end.
	h.write(filepath.Join(www, "vuln.php"), "<?php system($_GET['c']); ?>\n", 0o644)
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "usr/lib/systemd/system", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(h.priv, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.write(filepath.Join(h.priv, "var/lib/dpkg/status"), "", 0o644)
}

// sanitizedShadow is /etc/shadow with every password field replaced by
// "*": the copy never carries a hash, and root's key login still works.
func sanitizedShadow(t testing.TB) string {
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 1 {
			f[1] = "*"
		}
		out.WriteString(strings.Join(f, ":") + "\n")
	}
	return out.String()
}

func (h *host) adminKeypair() string {
	h.adminKey = h.path("ssh/admin_key")
	run(h.t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@soak", "-f", h.adminKey)
	run(h.t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", h.path("ssh/host_key"))
	b, err := os.ReadFile(h.adminKey + ".pub")
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// makeDaemonConfigs: sshd accepts passwords so that the brute force at
// the end fails the way real ones do ("Failed password"); no password can
// succeed, every hash in the private shadow is "*".
func (h *host) makeDaemonConfigs() {
	h.write("ssh/askpass", "#!/bin/sh\necho wrong-password\n", 0o755)
	h.write("ssh/sshd_config", fmt.Sprintf(`Port 22
ListenAddress 0.0.0.0
HostKey %s
PidFile none
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/authorized_keys/%%u
PrintMotd no
PrintLastLog no
LogLevel INFO
`, h.path("ssh/host_key")), 0o600)
	h.write("php/php-fpm.conf", fmt.Sprintf(`[global]
pid = %[1]s/php/php-fpm.pid
error_log = %[1]s/php/php-fpm.log
daemonize = no

[www]
user = www-data
group = www-data
listen = %[1]s/php/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 2
catch_workers_output = yes
`, h.dir), 0o644)
	h.write("nginx/nginx.conf", fmt.Sprintf(`daemon off;
user www-data;
worker_processes 1;
pid %[1]s/nginx/nginx.pid;
error_log %[1]s/nginx/error.log info;
events { worker_connections 64; }
http {
	access_log /var/log/nginx/access.log combined;
	client_body_temp_path %[1]s/nginx/body;
	proxy_temp_path %[1]s/nginx/proxy;
	fastcgi_temp_path %[1]s/nginx/fastcgi;
	uwsgi_temp_path %[1]s/nginx/uwsgi;
	scgi_temp_path %[1]s/nginx/scgi;
	server {
		listen 80;
		root %[2]s/var/www/html;
		index index.html;
		location ~ \.php$ {
			fastcgi_pass unix:%[1]s/php/fpm.sock;
			fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
			fastcgi_param SCRIPT_NAME $fastcgi_script_name;
			fastcgi_param QUERY_STRING $query_string;
			fastcgi_param REQUEST_METHOD $request_method;
			fastcgi_param REMOTE_ADDR $remote_addr;
			fastcgi_param SERVER_NAME $server_name;
			fastcgi_param SERVER_PORT $server_port;
		}
	}
}
`, h.dir, h.priv), 0o644)
	h.write("logrotate.conf", fmt.Sprintf(`/var/log/auth.log {
	rotate 4
	copytruncate
	compress
	delaycompress
	missingok
}
/var/log/nginx/access.log {
	rotate 4
	create 0640 root root
	compress
	delaycompress
	missingok
	sharedscripts
	postrotate
		kill -USR1 "$(cat %s/nginx/nginx.pid)"
	endscript
}
`, h.dir), 0o644)
}

// makePackages builds successive versions of a small .deb: a binary in
// /usr/bin, a systemd unit, a conffile in /etc, a changelog — all changing
// with the version, as a real update does.
func (h *host) makePackages() {
	for v := 1; v <= 8; v++ {
		d := h.path(fmt.Sprintf("debs/src%d", v))
		h.write(filepath.Join(d, "DEBIAN/control"), fmt.Sprintf("Package: soak-tool\nVersion: 1.0.%d\nArchitecture: all\n"+
			"Maintainer: Soak Test <soak@example.invalid>\nDescription: package-update churn for the soak test\n", v), 0o644)
		h.write(filepath.Join(d, "DEBIAN/conffiles"), "/etc/soak-tool/tool.conf\n", 0o644)
		h.write(filepath.Join(d, "usr/bin/soak-tool"), fmt.Sprintf("#!/bin/sh\necho soak-tool 1.0.%d\n", v), 0o755)
		h.write(filepath.Join(d, "usr/lib/systemd/system/soak-tool.service"),
			fmt.Sprintf("[Unit]\nDescription=soak tool %d\n\n[Service]\nExecStart=/usr/bin/soak-tool --level %d\n\n[Install]\nWantedBy=multi-user.target\n", v, v), 0o644)
		h.write(filepath.Join(d, "etc/soak-tool/tool.conf"), fmt.Sprintf("level = %d\n", v), 0o644)
		h.write(filepath.Join(d, "usr/share/doc/soak-tool/changelog"), fmt.Sprintf("soak-tool (1.0.%d) stable; urgency=low\n", v), 0o644)
		run(h.t, "dpkg-deb", "--root-owner-group", "-b", d, h.path(fmt.Sprintf("debs/soak-tool_%d.deb", v)))
		if err := os.RemoveAll(d); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *host) makeGoModule() {
	h.write("gowork/go.mod", "module soakapp\n\ngo 1.22\n", 0o644)
	h.write("gowork/build.go", "package main\n\nconst build = 0\n", 0o644)
	h.write("gowork/main.go", `package main

import (
	"fmt"
	"os"
	"time"
)

// With a duration argument it stays up that long, like a dev server, so
// that the agent's /proc scan sees a program running from /tmp.
func main() {
	fmt.Println("soakapp build", build, os.Getpid())
	if len(os.Args) > 1 {
		d, err := time.ParseDuration(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		time.Sleep(d)
	}
}

func sum(n int) (s int) {
	for i := 1; i <= n; i++ {
		s += i
	}
	return s
}
`, 0o644)
	h.write("gowork/main_test.go", `package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A slow test, as integration tests are: the test binary (in GOTMPDIR,
// under /tmp) runs long enough for the agent's /proc scan to see it.
func TestSlow(t *testing.T) { time.Sleep(1500 * time.Millisecond) }

func TestSum(t *testing.T) {
	if got := sum(100); got != 5050 {
		t.Fatalf("sum(100) = %d", got)
	}
}

// Like real test suites: temp files and a child process.
func TestFilesAndChild(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cat", p).Output(); err != nil || string(out) != "x" {
		t.Fatalf("cat: %q %v", out, err)
	}
}
`, 0o644)
}
