package account

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A Debian 12 passwd and shadow as the installer and adduser leave them:
// system accounts with "*", users with yescrypt hashes, one entry with an
// expiry already set, one with empty aging fields, one locked ("!").
const passwdFile = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
toor:x:0:0:second root:/root:/bin/bash
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
bob:x:1001:1001:Bob,,,:/home/bob:/bin/bash
carol:x:1002:1002::/home/carol:/bin/sh
dave:x:1003:1003::/home/dave:/bin/sh
`

const shadowFile = `root:$y$j9T$Kq0bJ3nGlLx0sQG4vO1o./$wq5Cq1O2eU8X9y4bS3mRkq0V.fWcYn6pT7dZ2hJ1aL3:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
bin:*:19700:0:99999:7:::
www-data:*:19700:0:99999:7:::
nobody:*:19700:0:99999:7:::
sshd:!:19700::::::
toor:$y$j9T$abc$def:19700:0:99999:7:::
alice:$y$j9T$0aZ9yq7bqBf1m2uN6l4kE/$Qy7e1Q8T2oXy3P4nV5bW6cZ7dA8eB9fC0gD1hE2iF3j:19710:0:99999:7:::
bob:$y$j9T$x$y:19720:0:99999:7::20100:
carol:!:19730::::::
dave:$y$j9T$p$q:19740:0:99999:7:::`

// etc makes a private copy of /etc's account files in a temporary
// directory and returns them.
func etc(t *testing.T, shadow string) Files {
	t.Helper()
	dir := t.TempDir()
	f := Files{Passwd: filepath.Join(dir, "passwd"), Shadow: filepath.Join(dir, "shadow")}
	if err := os.WriteFile(f.Passwd, []byte(passwdFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Shadow, []byte(shadow), 0o640); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDisableEnableRoundTrip(t *testing.T) {
	tests := []struct {
		name, user, shadow, prev string
	}{
		{"no expiry", "alice", shadowFile, ""},
		{"expiry set", "bob", shadowFile, "20100"},
		{"empty aging fields", "carol", shadowFile, ""},
		{"last line without newline", "dave", shadowFile, ""},
		{"last line with newline", "dave", shadowFile + "\n", ""},
		{"system account", "www-data", shadowFile, ""},
		{"CRLF line ends kept", "alice", strings.ReplaceAll(shadowFile, "\n", "\r\n"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := etc(t, tc.shadow)
			before, _ := os.Stat(f.Shadow)
			u, err := Disable(f, tc.user, nil)
			if err != nil {
				t.Fatal(err)
			}
			if u != (Undo{User: tc.user, PrevExpire: tc.prev, Changed: true}) {
				t.Errorf("undo = %+v", u)
			}
			if e, err := Expire(f, tc.user); err != nil || e != DisabledExpire {
				t.Errorf("expire after disable = %q, %v", e, err)
			}
			got, _ := os.ReadFile(f.Shadow)
			// Exactly one field of one line changed.
			gl, wl := strings.Split(string(got), "\n"), strings.Split(tc.shadow, "\n")
			diff := 0
			for i := range wl {
				if gl[i] != wl[i] {
					diff++
				}
			}
			if len(gl) != len(wl) || diff != 1 {
				t.Errorf("disable changed %d lines:\n%s", diff, got)
			}
			after, _ := os.Stat(f.Shadow)
			if after.Mode() != before.Mode() {
				t.Errorf("mode %v, want %v", after.Mode(), before.Mode())
			}
			r, err := Enable(f, u)
			if err != nil || !r.Restored || r.Drifted || r.Found != DisabledExpire {
				t.Fatalf("enable = %+v, %v", r, err)
			}
			if got, _ := os.ReadFile(f.Shadow); !bytes.Equal(got, []byte(tc.shadow)) {
				t.Errorf("round trip not byte-identical:\n%s", got)
			}
			// Idempotent.
			r, err = Enable(f, u)
			if err != nil || r.Restored || r.Found != tc.prev {
				t.Errorf("second enable = %+v, %v", r, err)
			}
			// Only the shadow file is left in the directory (no lock,
			// no temporary file).
			ents, _ := os.ReadDir(filepath.Dir(f.Shadow))
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != ".pwd.lock passwd shadow" {
				t.Errorf("directory holds %v", names)
			}
		})
	}
}

func TestDisableRefuses(t *testing.T) {
	malformed := strings.Replace(shadowFile, "alice:$y$j9T$0aZ9yq7bqBf1m2uN6l4kE/$Qy7e1Q8T2oXy3P4nV5bW6cZ7dA8eB9fC0gD1hE2iF3j:19710:0:99999:7:::", "alice:$y$secret:19710:0", 1)
	tests := []struct {
		name, user, shadow string
		protect            []string
		want               error
	}{
		{"root", "root", shadowFile, nil, ErrProtected},
		{"uid 0 alias", "toor", shadowFile, nil, ErrProtected},
		{"protect list", "alice", shadowFile, []string{"bob", "alice"}, ErrProtected},
		{"not in passwd", "mallory", shadowFile + "\nmallory:x:1:0:99999:7:::", nil, ErrNoUser},
		{"not in shadow", "alice", strings.Replace(shadowFile, "alice:", "alicia:", 1), nil, ErrNoUser},
		{"short entry", "alice", malformed, nil, ErrMalformed},
		{"listed twice", "dave", shadowFile + "\ndave:x:1:0:99999:7:::", nil, ErrMalformed},
		{"empty name", "", shadowFile, nil, ErrNoUser},
		{"colon in name", "a:b", shadowFile, nil, ErrNoUser},
		{"NIS compat", "+", shadowFile, nil, ErrNoUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := etc(t, tc.shadow)
			_, err := Disable(f, tc.user, tc.protect)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Disable(%q) = %v, want %v", tc.user, err, tc.want)
			}
			if got, _ := os.ReadFile(f.Shadow); string(got) != tc.shadow {
				t.Error("shadow changed by a refused disable")
			}
			// Never a hash in an error.
			if strings.Contains(err.Error(), "$y$") {
				t.Errorf("error leaks a hash: %v", err)
			}
		})
	}
}

func TestAlreadyDisabled(t *testing.T) {
	f := etc(t, strings.Replace(shadowFile, "7::20100:", "7::1:", 1))
	u, err := Disable(f, "bob", nil)
	if err != nil || u.Changed || u.PrevExpire != "1" {
		t.Fatalf("disable of an expired account = %+v, %v", u, err)
	}
	before, _ := os.ReadFile(f.Shadow)
	r, err := Enable(f, u)
	after, _ := os.ReadFile(f.Shadow)
	if err != nil || r.Restored || !bytes.Equal(before, after) {
		t.Errorf("enable re-enabled an account picket did not disable: %+v, %v", r, err)
	}
}

func TestEnableDriftAndGone(t *testing.T) {
	f := etc(t, shadowFile)
	u, err := Disable(f, "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	// An operator changes the expiry meanwhile.
	data, _ := os.ReadFile(f.Shadow)
	if err := os.WriteFile(f.Shadow, bytes.Replace(data, []byte("7::1:"), []byte("7::30000:"), 1), 0o640); err != nil {
		t.Fatal(err)
	}
	r, err := Enable(f, u)
	if err != nil || !r.Restored || !r.Drifted || r.Found != "30000" {
		t.Fatalf("enable after drift = %+v, %v", r, err)
	}
	if got, _ := os.ReadFile(f.Shadow); string(got) != shadowFile {
		t.Errorf("not restored:\n%s", got)
	}
	// The user was deleted.
	u, _ = Disable(f, "carol", nil)
	data, _ = os.ReadFile(f.Shadow)
	lines := strings.Split(string(data), "\n")
	lines = append(lines[:9], lines[10:]...)
	os.WriteFile(f.Shadow, []byte(strings.Join(lines, "\n")), 0o640)
	r, err = Enable(f, u)
	if err != nil || !r.Gone || r.Restored {
		t.Errorf("enable of a deleted user = %+v, %v", r, err)
	}
}

func TestLocking(t *testing.T) {
	f := etc(t, shadowFile)
	// A stale shadow-utils lock (dead pid) is taken over.
	if err := os.WriteFile(f.Shadow+".lock", []byte("999999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := Disable(f, "alice", nil)
	if err != nil {
		t.Fatalf("stale lock: %v", err)
	}
	if _, err := os.Stat(f.Shadow + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock left behind: %v", err)
	}
	// A live holder (this process's parent stands in for usermod).
	os.WriteFile(f.Shadow+".lock", []byte(itoa(os.Getppid())), 0o600)
	if _, err := Enable(f, u); !errors.Is(err, ErrLocked) {
		t.Errorf("live lock: %v", err)
	}
	os.Remove(f.Shadow + ".lock")
	if e, _ := Expire(f, "alice"); e != DisabledExpire {
		t.Errorf("locked enable wrote: %q", e)
	}
	// lckpwdf's lock is honoured too.
	unlock, err := lockPwd(filepath.Join(filepath.Dir(f.Shadow), ".pwd.lock"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Enable(f, u); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("enable ran while .pwd.lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.Shadow); string(got) != shadowFile {
		t.Error("not restored after the lock was released")
	}
}

// TestConcurrent disables and enables different users from many
// goroutines: without the lock, one rewrite would lose another's change.
func TestConcurrent(t *testing.T) {
	f := etc(t, shadowFile)
	users := []string{"alice", "bob", "carol", "dave", "www-data", "daemon"}
	var wg sync.WaitGroup
	undos := make([]Undo, len(users))
	for i, u := range users {
		wg.Go(func() {
			var err error
			if undos[i], err = Disable(f, u, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, u := range users {
		if e, _ := Expire(f, u); e != DisabledExpire {
			t.Errorf("%s: expire %q after concurrent disables", u, e)
		}
	}
	for _, u := range undos {
		wg.Go(func() {
			if _, err := Enable(f, u); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := os.ReadFile(f.Shadow); string(got) != shadowFile {
		t.Errorf("after concurrent round trips:\n%s", got)
	}
}

func TestOwnerKept(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root") // the mode is checked in the round trip
	}
	f := etc(t, shadowFile)
	if err := os.Chown(f.Shadow, 0, 42); err != nil {
		t.Fatal(err)
	}
	if _, err := Disable(f, "alice", nil); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.Shadow)
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 42 || fi.Mode().Perm() != 0o640 {
		t.Errorf("owner/mode after rewrite: gid %d mode %v", st.Gid, fi.Mode())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func FuzzSetExpire(f *testing.F) {
	f.Add([]byte(shadowFile), "alice", "1")
	f.Add([]byte("a:b:c:d:e:f:g:h:i\na:b"), "a", "")
	f.Fuzz(func(t *testing.T, data []byte, user, val string) {
		if strings.ContainsAny(val, ":\n") {
			return
		}
		out, prev, err := setExpire(data, user, val)
		if err != nil {
			return
		}
		back, got, err := setExpire(out, user, prev)
		if err != nil || got != val || !bytes.Equal(back, data) {
			t.Fatalf("round trip of %q for %q: %q, %q, %v", data, user, back, got, err)
		}
	})
}

func BenchmarkDisableEnable(b *testing.B) {
	dir := b.TempDir()
	f := Files{Passwd: filepath.Join(dir, "passwd"), Shadow: filepath.Join(dir, "shadow")}
	os.WriteFile(f.Passwd, []byte(passwdFile), 0o644)
	os.WriteFile(f.Shadow, []byte(shadowFile), 0o640)
	for b.Loop() {
		u, err := Disable(f, "alice", nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Enable(f, u); err != nil {
			b.Fatal(err)
		}
	}
}
