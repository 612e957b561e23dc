package accounts

import (
	"strings"
	"testing"
)

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte(basePasswd))
	f.Add([]byte("a:$6$x$y:0:0::/:\r\n+@x\n-y\n:::::::\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, bad := ParsePasswd(data)
		n := strings.Count(string(data), "\n") + 1
		for _, u := range users {
			if !validName(u.Name) || u.Line < 1 || u.Line > n || u.UID < 0 || u.GID < 0 {
				t.Fatalf("bad entry %+v", u)
			}
			if l := passwdLine(u); strings.Count(l, ":") < 6 {
				t.Fatalf("evidence line %q", l)
			}
		}
		for _, b := range bad {
			if b < 1 || b > n {
				t.Fatalf("bad line %d of %d", b, n)
			}
		}
	})
}

func FuzzParseGroup(f *testing.F) {
	f.Add([]byte(baseGroup))
	f.Add([]byte("g:x:1:a,,b, c\n:x:1:\nh:x:99999999999:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		groups, _ := ParseGroup(data)
		for _, g := range groups {
			if !validName(g.Name) || g.GID < 0 {
				t.Fatalf("bad group %+v", g)
			}
			for _, m := range g.Members {
				if m == "" || strings.ContainsAny(m, ",:\n") {
					t.Fatalf("bad member %q", m)
				}
			}
		}
	})
}

func FuzzParseShadow(f *testing.F) {
	f.Add([]byte(baseShadow))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := ParseShadow(data)
		for _, e := range entries {
			switch e.Password {
			case PasswordEmpty, PasswordLocked, PasswordSet:
			default:
				t.Fatalf("state %q", e.Password)
			}
		}
	})
}

func FuzzParseSudoers(f *testing.F) {
	f.Add([]byte(baseSudoers))
	f.Add([]byte("User_Alias A = a, %b : B = A\nA, B ALL = (ALL : ALL) NOPASSWD: ALL, PASSWD: /bin/sh : H = (x) /bin/ls\n"))
	f.Add([]byte("Defaults:A !authenticate\nCmnd_Alias C = /bin/x \\\n, /bin/y\n#include x\n@includedir y\n#12 ALL=ALL\n"))
	f.Add([]byte("a ALL=NOPASSWD :ALL\na ALL=(\na ALL=)\n\\\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf := ParseSudoers(data)
		s := &Sudoers{Aliases: map[string][]string{}}
		for _, a := range sf.Aliases {
			s.Aliases[a.Kind+" "+a.Name] = a.Members
		}
		for _, r := range sf.Rules {
			if len(r.Users) == 0 || len(r.Hosts) == 0 || len(r.Commands) == 0 || r.RunAs == "" {
				t.Fatalf("incomplete rule %+v", r)
			}
			s.Rules = append(s.Rules, SourcedRule{Rule: r})
		}
		s.NoAuth = sf.NoAuth
		for _, g := range s.Grants() {
			if g.Principal == "" || strings.HasPrefix(g.Principal, "!") {
				t.Fatalf("bad principal in %+v", g)
			}
		}
	})
}
