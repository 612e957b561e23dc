package accounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// copyTestdataRoot builds a fake root whose /etc holds the testdata files.
func copyTestdataRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		dst := filepath.Join(root, "etc", rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestLoadSudoersTestdata(t *testing.T) {
	root := copyTestdataRoot(t)
	s, err := LoadSudoers(root, "/etc/sudoers")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/sudoers", "/etc/sudoers.d/90-cloud-init-users", "/etc/sudoers.d/README"}; !reflect.DeepEqual(s.Files, want) {
		t.Errorf("files = %v, want %v", s.Files, want)
	}
	if want := []string{"/etc/sudoers:29"}; !reflect.DeepEqual(s.Bad, want) {
		t.Errorf("bad = %v, want %v", s.Bad, want)
	}
	var got []string
	for _, g := range s.Grants() {
		got = append(got, g.File+":"+itoa(g.Line)+" "+g.String()+map[bool]string{true: " [Defaults]"}[g.NoAuthDefault])
	}
	want := []string{
		"/etc/sudoers:19 root ALL=(ALL:ALL) ALL",
		"/etc/sudoers:22 %admin ALL=(ALL) ALL",
		"/etc/sudoers:23 %sudo ALL=(ALL:ALL) ALL",
		"/etc/sudoers:24 alice web1,web2=(root) NOPASSWD: /usr/bin/systemctl restart nginx, /usr/bin/systemctl restart php8.2-fpm",
		"/etc/sudoers:24 %wheel web1,web2=(root) NOPASSWD: /usr/bin/systemctl restart nginx, /usr/bin/systemctl restart php8.2-fpm",
		"/etc/sudoers:24 alice web1,web2=(root) /bin/sh",
		"/etc/sudoers:24 %wheel web1,web2=(root) /bin/sh",
		"/etc/sudoers:25 deploy ALL=(www-data) NOPASSWD: /usr/bin/rsync [Defaults]",
		"/etc/sudoers:25 ci ALL=(www-data) NOPASSWD: /usr/bin/rsync [Defaults]",
		"/etc/sudoers:26 carol ALL=(root) NOPASSWD: /usr/bin/journalctl",
		"/etc/sudoers:26 carol web1,web2=(ALL) ALL",
		"/etc/sudoers:27 #1005 ALL=(ALL) ALL",
		"/etc/sudoers:28 bob ALL=(ALL:ALL) sha256:abcdef /usr/bin/id, !/usr/bin/su",
		"/etc/sudoers:28 dave ALL=(ALL:ALL) sha256:abcdef /usr/bin/id, !/usr/bin/su",
		"/etc/sudoers.d/90-cloud-init-users:2 ubuntu ALL=(ALL) NOPASSWD: ALL",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grants:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestParseSudoersLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // RunAs NoPasswd Commands per rule; nil: not a rule
		bad  bool
	}{
		{in: "alice ALL=(ALL) NOPASSWD: ALL", want: []string{"ALL true ALL"}},
		{in: "alice ALL=(ALL) NOPASSWD:ALL", want: []string{"ALL true ALL"}},
		{in: "alice\tALL = NOPASSWD : ALL", want: []string{"root true ALL"}},
		{in: "alice ALL=(root) NOPASSWD: /bin/ls, /bin/cat, PASSWD: /bin/sh", want: []string{"root true /bin/ls|/bin/cat", "root false /bin/sh"}},
		{in: "alice ALL=(root) NOEXEC: NOPASSWD: /usr/bin/vi", want: []string{"root true /usr/bin/vi"}},
		{in: "alice ALL=(bob) /bin/ls, (carol) /bin/cat", want: []string{"bob false /bin/ls", "carol false /bin/cat"}},
		{in: "alice ALL=(:wheel) /bin/ls", want: []string{"root:wheel false /bin/ls"}},
		{in: "alice ALL=ROLE=unconfined_r TYPE=unconfined_t /bin/ls", want: []string{"root false /bin/ls"}},
		{in: "alice ALL=CWD=* NOPASSWD: /bin/ls", want: []string{"root true /bin/ls"}},
		{in: "alice ALL=/usr/bin/chown root\\:root /srv/x", want: []string{"root false /usr/bin/chown root\\:root /srv/x"}},
		{in: "alice ALL=(ALL) ALL # and a comment", want: []string{"ALL false ALL"}},
		{in: "# alice ALL=(ALL) ALL", want: nil},
		{in: "alice ALL", bad: true},
		{in: "alice ALL=", bad: true},
		{in: "alice ALL=(ALL", bad: true},
		{in: "ALL", bad: true},
		{in: "User_Alias lower = x", bad: true},
		{in: "Foo_Alias X = y", bad: true},
		{in: "alice ALL=(ALL) ALL \\\n  , /bin/ls", want: []string{"ALL false ALL|/bin/ls"}},
	} {
		f := ParseSudoers([]byte(tc.in))
		var got []string
		for _, r := range f.Rules {
			got = append(got, r.RunAs+" "+map[bool]string{true: "true", false: "false"}[r.NoPasswd]+" "+strings.Join(r.Commands, "|"))
		}
		if !reflect.DeepEqual(got, tc.want) || (len(f.Bad) > 0) != tc.bad {
			t.Errorf("%q: got %q bad %v, want %q bad %v", tc.in, got, f.Bad, tc.want, tc.bad)
		}
	}
}

func TestSudoersIncludes(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o440); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/sudoers", "#include sudoers.local\n#includedir /etc/sudoers.d\n@include /etc/sudoers\n#include /etc/sudoers.%h\n")
	write("etc/sudoers.local", "a ALL=(ALL) ALL\n@include \"/etc/missing file\"\n")
	write("etc/sudoers.d/b", "b ALL=(ALL) NOPASSWD: ALL\n@includedir nested\n")
	write("etc/sudoers.d/nested/c", "c ALL=(ALL) ALL\n")
	s, err := LoadSudoers(root, "/etc/sudoers")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/sudoers", "/etc/sudoers.local", "/etc/sudoers.d/b", "/etc/sudoers.d/nested/c"}; !reflect.DeepEqual(s.Files, want) {
		t.Errorf("files %v, want %v", s.Files, want)
	}
	if want := []string{"/etc/sudoers.d", "/etc/sudoers.d/nested"}; !reflect.DeepEqual(s.Dirs, want) {
		t.Errorf("dirs %v, want %v", s.Dirs, want)
	}
	if n := len(s.Grants()); n != 3 {
		t.Errorf("%d grants, want 3", n)
	}
}

func TestWho(t *testing.T) {
	root := copyTestdataRoot(t)
	s, err := LoadSudoers(root, "/etc/sudoers")
	if err != nil {
		t.Fatal(err)
	}
	users := []User{{Name: "root", UID: 0}, {Name: "alice", UID: 1000, GID: 1000}, {Name: "bob", UID: 1001, GID: 1001},
		{Name: "eve", UID: 1005, GID: 1005}, {Name: "wally", UID: 1006, GID: 10}, {Name: "deploy", UID: 1007, GID: 1007},
		{Name: "nobody", UID: 65534, GID: 65534}}
	groups := []Group{{Name: "sudo", GID: 27, Members: []string{"bob"}}, {Name: "wheel", GID: 10}}
	var got []string
	for _, a := range Who(s.Grants(), users, groups) {
		got = append(got, a.User+" "+map[bool]string{true: "nopasswd", false: "password"}[a.NoPasswd]+" "+itoa(len(a.Grants)))
	}
	want := []string{"root password 1", "alice nopasswd 2", "bob password 2", "eve password 1", "wally nopasswd 2", "deploy nopasswd 1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSudoersAliasBomb: self-referencing and fanning aliases terminate.
func TestSudoersAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("User_Alias A0 = A0\n") // no terminal: only the step budget stops it
	for i := 1; i < 30; i++ {
		b.WriteString("User_Alias A" + itoa(i) + " = " + strings.Repeat("A"+itoa(i-1)+", ", 8) + "y\n")
	}
	b.WriteString("A29 ALL=(ALL) ALL\n")
	f := ParseSudoers([]byte(b.String()))
	s := &Sudoers{Aliases: map[string][]string{}}
	for _, a := range f.Aliases {
		s.Aliases[a.Kind+" "+a.Name] = a.Members
	}
	for _, r := range f.Rules {
		s.Rules = append(s.Rules, SourcedRule{Rule: r})
	}
	done := make(chan int)
	go func() { done <- len(s.Grants()) }()
	select {
	case n := <-done:
		if n > maxAliasOutput {
			t.Errorf("%d grants", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alias expansion does not terminate")
	}
}
