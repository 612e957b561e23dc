package accounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParsePasswdTestdata(t *testing.T) {
	users, bad := ParsePasswd(readTestdata(t, "passwd"))
	want := []User{
		{Name: "root", UID: 0, GID: 0, GECOS: "root", Home: "/root", Shell: "/bin/bash", Password: PasswordShadow, Line: 1},
		{Name: "daemon", UID: 1, GID: 1, GECOS: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin", Password: PasswordShadow, Line: 2},
		{Name: "www-data", UID: 33, GID: 33, GECOS: "www-data", Home: "/var/www", Shell: "/usr/sbin/nologin", Password: PasswordShadow, Line: 4},
		{Name: "nobody", UID: 65534, GID: 65534, GECOS: "nobody", Home: "/nonexistent", Shell: "/usr/sbin/nologin", Password: PasswordShadow, Line: 5},
		{Name: "alice", UID: 1000, GID: 1000, GECOS: "Alice Admin,,,", Home: "/home/alice", Shell: "/bin/bash", Password: PasswordShadow, Line: 7},
		{Name: "legacy", UID: 1001, GID: 1001, Home: "/home/legacy", Shell: "/bin/sh", Password: PasswordSet, Line: 8},
		{Name: "nopw", UID: 1002, GID: 1002, Home: "/home/nopw", Shell: "", Password: PasswordEmpty, Line: 9},
		{Name: "locked", UID: 1003, GID: 1003, Home: "/home/locked", Shell: "/bin/bash", Password: PasswordLocked, Line: 10},
		{Name: "dos", UID: 1006, GID: 1006, Home: "/home/dos", Shell: "/bin/bash", Password: PasswordShadow, Line: 17},
		{Name: "crlf", UID: 1007, GID: 1007, Home: "/home/crlf", Shell: "/bin/bash", Password: PasswordShadow, Line: 18},
	}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("users:\n got %+v\nwant %+v", users, want)
	}
	if wantBad := []int{13, 14, 15, 16}; !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad = %v, want %v", bad, wantBad)
	}
	// The hash never survives the parse, not even in the evidence line.
	for _, u := range users {
		if strings.Contains(passwdLine(u), "$6$") {
			t.Errorf("hash in %q", passwdLine(u))
		}
	}
}

func TestParsePasswdLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *User
	}{
		{"toor:x:0:0::/root:/bin/bash", &User{Name: "toor", Home: "/root", Shell: "/bin/bash", Password: PasswordShadow, Line: 1}},
		{"a:*:5:5:::", &User{Name: "a", UID: 5, GID: 5, Password: PasswordLocked, Line: 1}},
		{"a:x:5:5::", nil},   // 6 fields
		{"a:x:5:5::::", nil}, // 8 fields
		{":x:5:5:::", nil},   // no name
		{"a:x:+5:5:::", nil}, // sign
		{"a:x:4294967295:5:::", &User{Name: "a", UID: 4294967295, GID: 5, Password: PasswordShadow, Line: 1}},
		{"   ", nil},
	} {
		users, _ := ParsePasswd([]byte(tc.in))
		var got *User
		if len(users) == 1 {
			got = &users[0]
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseGroupTestdata(t *testing.T) {
	groups, bad := ParseGroup(readTestdata(t, "group"))
	want := []Group{
		{Name: "root", GID: 0, Line: 1},
		{Name: "adm", GID: 4, Members: []string{"syslog", "alice"}, Line: 2},
		{Name: "sudo", GID: 27, Members: []string{"alice", "bob"}, Line: 3},
		{Name: "docker", GID: 999, Line: 4},
		{Name: "alice", GID: 1000, Line: 5},
	}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("groups:\n got %+v\nwant %+v", groups, want)
	}
	if wantBad := []int{6, 7}; !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad = %v, want %v", bad, wantBad)
	}
}

func TestParseShadowTestdata(t *testing.T) {
	data := readTestdata(t, "shadow")
	entries, bad := ParseShadow(data)
	want := []Shadow{
		{Name: "root", Password: PasswordSet, LastChange: 19500, Line: 1},
		{Name: "daemon", Password: PasswordLocked, LastChange: 19000, Line: 2},
		{Name: "www-data", Password: PasswordLocked, LastChange: 19000, Line: 3},
		{Name: "alice", Password: PasswordSet, LastChange: 19600, Line: 4},
		{Name: "nopw", Password: PasswordEmpty, LastChange: 19601, Line: 5},
		{Name: "locked", Password: PasswordLocked, LastChange: 19602, Line: 6},
		{Name: "bang", Password: PasswordLocked, LastChange: -1, Line: 7},
		{Name: "weird", Password: PasswordLocked, LastChange: -1, Line: 8},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("shadow:\n got %+v\nwant %+v", entries, want)
	}
	if wantBad := []int{9}; !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad = %v, want %v", bad, wantBad)
	}
}

func TestParseLoginDefs(t *testing.T) {
	d := ParseLoginDefs(readTestdata(t, "login.defs"))
	if d != (LoginDefs{UIDMin: 1000, SysUIDMax: 999}) {
		t.Errorf("got %+v", d)
	}
	d = ParseLoginDefs([]byte("UID_MIN 500\nSYS_UID_MAX 499\n"))
	for uid, sys := range map[int]bool{0: true, 499: true, 500: false, 1000: false, 65534: true} {
		if d.System(uid) != sys {
			t.Errorf("System(%d) = %v with %+v", uid, !sys, d)
		}
	}
}

func TestNologin(t *testing.T) {
	for sh, want := range map[string]bool{"/usr/sbin/nologin": true, "/sbin/nologin": true, "/bin/false": true,
		"/bin/sync": true, "/bin/bash": false, "/bin/sh": false, "": false, "/usr/bin/zsh": false} {
		if nologin(sh) != want {
			t.Errorf("nologin(%q) = %v", sh, !want)
		}
	}
}
