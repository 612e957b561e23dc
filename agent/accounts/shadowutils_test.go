package accounts

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// TestSensorShadowUtils runs the real shadow-utils tools against a
// private root (--root chroots into it, hence root is required) and checks
// that their edits, made the way they really make them (lock files,
// backups, rename over), give exactly the expected changes.
func TestSensorShadowUtils(t *testing.T) {
	integration.Root(t)
	useradd := integration.Binary(t, "useradd")
	usermod := integration.Binary(t, "usermod")
	userdel := integration.Binary(t, "userdel")
	passwd := integration.Binary(t, "passwd")
	fr := newFakeRoot(t)
	fr.write("/etc/gshadow", "root:*::\nadm:*::alice\nsudo:*::alice\ndocker:!::\nalice:!::\nbob:!::\n")
	r := startSensor(t, testSensor(fr.root))
	r.quiet(100 * time.Millisecond)
	run := func(bin string, args ...string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--root", fr.root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
	}
	// Compact form: what op name path after.
	expect := func(want ...string) {
		t.Helper()
		var got []string
		timeout := time.After(5 * time.Second)
		for len(got) < len(want) {
			select {
			case it := <-r.out:
				c := it.Event.Change
				got = append(got, strings.Join([]string{c.What, c.Op, c.Name, c.Path, c.After}, " "))
				if it.Event.User != c.Name {
					t.Errorf("event user %q for %q", it.Event.User, c.Name)
				}
			case <-timeout:
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		r.quiet(300 * time.Millisecond)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	run(useradd, "-M", "-u", "1002", "-g", "1001", "-s", "/bin/bash", "-G", "sudo", "mallory")
	expect("account_added added mallory /etc/passwd mallory:x:1002:1001::/home/mallory:/bin/bash",
		"privileged_group_member added mallory /etc/group sudo")
	run(usermod, "-s", "/bin/bash", "www-data")
	expect("login_shell_on_system_account modified www-data /etc/passwd /bin/bash")
	run(useradd, "-M", "-o", "-u", "0", "-g", "0", "-d", "/root", "-s", "/bin/sh", "toor")
	expect("uid0_account added toor /etc/passwd toor:x:0:0::/root:/bin/sh")
	run(passwd, "-d", "alice")
	expect("password_removed modified alice /etc/shadow empty")
	run(usermod, "-aG", "docker", "bob")
	expect("privileged_group_member added bob /etc/group docker")
	run(userdel, "mallory")
	expect("account_removed removed mallory /etc/passwd ")
}
