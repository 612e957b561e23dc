package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

func TestReadFakeTree(t *testing.T) {
	many := make([]string, 0, MaxArgs+1)
	for i := range MaxArgs {
		many = append(many, "arg"+strconv.Itoa(i))
	}
	many = append(many, ArgsTruncated)
	r := NewReader("testdata/proc", NewUsers("testdata/passwd"))
	tests := []struct {
		pid  int
		want event.Process
	}{
		{100, event.Process{PID: 100, PPID: 1, StartTime: 4242, UID: 33, GID: 34, User: "www-data", Comm: "nginx",
			Exe: "/usr/sbin/nginx", Args: []string{"nginx: worker process"}, Cwd: "/var/www",
			Cgroup: "/system.slice/nginx.service"}},
		{200, event.Process{PID: 200, PPID: 100, StartTime: 99999, UID: 1000, GID: 1000, User: "alice",
			Comm: "a) b (c)", Exe: "/dev/shm/x", Deleted: true, Args: many, Cwd: "/dev/shm",
			Cgroup: "/user.slice/user-1000.slice/session-3.scope"}},
		{300, event.Process{PID: 300, PPID: 200, StartTime: 5, User: "root", Comm: "bash", Exe: "/usr/bin/bash",
			Args: []string{"bash", "-c", strings.Repeat("A", MaxArgBytes-8), ArgsTruncated}, Cwd: "/",
			Cgroup: "/docker/abc"}},
		{400, event.Process{PID: 400, PPID: 300, StartTime: 777, UID: 1000, GID: 1000, User: "alice", Comm: "true",
			Cgroup: "/user.slice", Partial: true}},
		{2, event.Process{PID: 2, PPID: 0, StartTime: 24, User: "root", Comm: "kthreadd", Cgroup: "/"}},
		// Gone entirely: a race, not an error.
		{999, event.Process{PID: 999, Partial: true}},
	}
	for _, tt := range tests {
		got, err := r.Read(tt.pid)
		if err != nil {
			t.Errorf("Read(%d): %v", tt.pid, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Read(%d)\n got %+v\nwant %+v", tt.pid, got, tt.want)
		}
	}
	if r.Races() != 2 {
		t.Errorf("races = %d, want 2 (zombie, gone)", r.Races())
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in   string
		want stat
		ok   bool
	}{
		{"1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 3 4 5\n", stat{1, "systemd", 'S', 0, 4194560, 3}, true},
		{"7 ((sd-pam)) S 6 7 7 0 -1 1 0 0 0 0 0 0 0 0 20 0 1 0 12345678901", stat{7, "(sd-pam)", 'S', 6, 1, 12345678901}, true},
		{"8 (a b) c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19", stat{8, "a b) c", 'R', 1, 6, 19}, true},
		{"9 () Z 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 42", stat{9, "", 'Z', 1, 0, 42}, true},
		{"", stat{}, false},
		{"1 (x) S 0 1", stat{}, false},
		{"x (y) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 1", stat{}, false},
		{"1 (x) SS 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 1", stat{}, false},
		{"1 (x) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 -1", stat{}, false},
		{"1 )x( S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 1", stat{}, false},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.in))
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseStatus(t *testing.T) {
	good := "Name:\tsshd\nTgid:\t812\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t5\t0\t0\t0\n"
	s, err := parseStatus([]byte(good))
	if err != nil || s != (status{name: "sshd", uid: 0, gid: 5, ppid: 1, tgid: 812}) {
		t.Errorf("parseStatus = %+v, %v", s, err)
	}
	for _, bad := range []string{"", "Name:\tx\n", "Uid:\tx\t0\nGid:\t0\n", "Uid:\t0\nGid:\t0\nPPid:\t-1\n"} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Errorf("parseStatus(%q): no error", bad)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	tests := map[string]string{
		"0::/system.slice/docker-abc.scope\n":                     "/system.slice/docker-abc.scope",
		"12:pids:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n": "/docker/abc",
		"3:cpu,pids:/kubepods/x\n":                                "/kubepods/x",
		"9:name=systemd:/\n8:pids:/\n0::/\n":                      "/",
		"2:memory:/x\n":                                           "",
		"garbage\n":                                               "",
		"1:name=systemd:/user.slice\n0::/user.slice/user-1000.slice/x.scope": "/user.slice/user-1000.slice/x.scope",
	}
	for in, want := range tests {
		if got := parseCgroup([]byte(in)); got != want {
			t.Errorf("parseCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", []string{""}},
		{"a", []string{"a"}},
		{"a\x00b\x00", []string{"a", "b"}},
		{"a\x00\x00", []string{"a", ""}},
		{"nginx: master process /usr/sbin/nginx", []string{"nginx: master process /usr/sbin/nginx"}},
	}
	for _, tt := range tests {
		if got := splitArgs([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Exactly MaxArgs arguments: not truncated.
	in := strings.Repeat("x\x00", MaxArgs)
	if got := splitArgs([]byte(in)); len(got) != MaxArgs || got[len(got)-1] != "x" {
		t.Errorf("64 args: got %d, last %q", len(got), got[len(got)-1])
	}
}

func TestUsersReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte("root:x:0:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := NewUsers(path)
	if u.Name(0) != "root" || u.Name(1001) != "" {
		t.Fatalf("initial lookup wrong")
	}
	if err := os.WriteFile(path, []byte("root:x:0:0::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	u.checked = time.Time{} // skip the 1 s recheck throttle
	u.mu.Unlock()
	if got := u.Name(1001); got != "bob" {
		t.Errorf("after change: Name(1001) = %q, want bob", got)
	}
	if NewUsers(filepath.Join(t.TempDir(), "missing")).Name(0) != "" {
		t.Errorf("missing passwd resolved a name")
	}
}
