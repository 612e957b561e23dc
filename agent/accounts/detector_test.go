package accounts

import (
	"reflect"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func TestDetector(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	user := func(n string) signal.Entity { return signal.Entity{Kind: signal.User, Value: n} }
	file := func(p string) signal.Entity { return signal.Entity{Kind: signal.File, Value: p} }
	for _, tc := range []struct {
		name   string
		user   string
		change event.Change
		want   *signal.Signal // Time, Evidence filled in by the test
	}{
		{"uid0", "toor", event.Change{What: WhatUID0, Op: OpAdded, Path: PathPasswd, Name: "toor", After: "toor:x:0:0::/root:/bin/bash",
			Attrs: map[string]string{"line": "31", "uid": "0"}},
			&signal.Signal{Rule: RuleUID0, Stage: signal.PrivilegeEscalation, Weight: 70, Entities: []signal.Entity{user("toor")},
				Reason: `new account "toor" with uid 0 (/etc/passwd line 31)`, Subject: `uid0_account:toor:"toor:x:0:0::/root:/bin/bash"`}},
		{"uid0 modified", "alice", event.Change{What: WhatUID0, Op: OpModified, Path: PathPasswd, Name: "alice", After: "a",
			Attrs: map[string]string{"line": "4"}},
			&signal.Signal{Rule: RuleUID0, Stage: signal.PrivilegeEscalation, Weight: 70, Entities: []signal.Entity{user("alice")},
				Reason: `account "alice" changed to uid 0 (/etc/passwd line 4)`, Subject: `uid0_account:alice:"a"`}},
		{"group", "bob", event.Change{What: WhatPrivilegedGroup, Op: OpAdded, Path: PathGroup, Name: "bob", After: "sudo",
			Attrs: map[string]string{"group": "sudo", "via": "member list"}},
			&signal.Signal{Rule: RulePrivilegedGroup, Stage: signal.PrivilegeEscalation, Weight: 50, Entities: []signal.Entity{user("bob")},
				Reason: `"bob" added to privileged group "sudo" (/etc/group, member list)`, Subject: "group:sudo"}},
		{"shell", "www-data", event.Change{What: WhatSystemShell, Op: OpModified, Path: PathPasswd, Name: "www-data",
			Before: "/usr/sbin/nologin", After: "/bin/bash", Attrs: map[string]string{"uid": "33"}},
			&signal.Signal{Rule: RuleSystemShell, Stage: signal.Persistence, Weight: 40, Entities: []signal.Entity{user("www-data")},
				Reason:  `system account "www-data" (uid 33) got login shell /bin/bash (was /usr/sbin/nologin)`,
				Subject: `login_shell_on_system_account:www-data:"/bin/bash"`}},
		{"password", "alice", event.Change{What: WhatPasswordRemoved, Op: OpModified, Path: PathShadow, Name: "alice", Before: "set", After: "empty"},
			&signal.Signal{Rule: RulePasswordRemoved, Stage: signal.Persistence, Weight: 50, Entities: []signal.Entity{user("alice")},
				Reason: `password of "alice" removed: it was set, now empty (/etc/shadow)`, Subject: `password_removed:alice:"empty"`}},
		{"nopasswd", "bob", event.Change{What: WhatSudoNoPasswd, Op: OpAdded, Path: "/etc/sudoers.d/x", Name: "bob",
			After: "bob ALL=(ALL) NOPASSWD: ALL", Attrs: map[string]string{"line": "1", "rule": "bob ALL=(ALL) NOPASSWD: ALL"}},
			&signal.Signal{Rule: RuleSudoNoPasswd, Stage: signal.PrivilegeEscalation, Weight: 50,
				Entities: []signal.Entity{user("bob"), file("/etc/sudoers.d/x")},
				Reason:   `new passwordless sudo rule for bob in /etc/sudoers.d/x line 1: "bob ALL=(ALL) NOPASSWD: ALL"`,
				Subject:  "bob ALL=(ALL) NOPASSWD: ALL"}},
		{"sudo rule for a group", "", event.Change{What: WhatSudoRule, Op: OpAdded, Path: "/etc/sudoers", Name: "%docker",
			After: "%docker ALL=(root) /usr/bin/docker", Attrs: map[string]string{"line": "7", "rule": "%docker ALL=(root) /usr/bin/docker"}},
			&signal.Signal{Rule: RuleSudoRule, Stage: signal.PrivilegeEscalation, Weight: 30, Entities: []signal.Entity{file("/etc/sudoers")},
				Reason:  `new sudo rule for %docker in /etc/sudoers line 7: "%docker ALL=(root) /usr/bin/docker"`,
				Subject: "%docker ALL=(root) /usr/bin/docker"}},
		{"added", "eve", event.Change{What: WhatAccountAdded, Op: OpAdded, Path: PathPasswd, Name: "eve", After: "e",
			Attrs: map[string]string{"line": "7", "uid": "1002", "shell": "/bin/sh"}},
			&signal.Signal{Rule: RuleAccountAdded, Stage: signal.Persistence, Weight: 10, Entities: []signal.Entity{user("eve")},
				Reason: `new account "eve" uid 1002 shell /bin/sh (/etc/passwd line 7)`, Subject: `account_added:eve:"e"`}},
		{"removed", "eve", event.Change{What: WhatAccountRemoved, Op: OpRemoved, Path: PathPasswd, Name: "eve"}, nil},
		{"sudo rule removed", "bob", event.Change{What: WhatSudoNoPasswd, Op: OpRemoved, Path: "/etc/sudoers", Name: "bob"}, nil},
		{"unknown what", "bob", event.Change{What: "something_else", Op: OpAdded}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.change
			ev := event.Event{Time: at, Kind: event.AccountChanged, User: tc.user, Change: &c}
			var got []signal.Signal
			NewDetector(DefaultDetectorOptions()).Observe(&ev, func(s signal.Signal) { got = append(got, s) })
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("unexpected %+v", got)
				}
				return
			}
			w := *tc.want
			w.Time, w.Evidence = at, []event.Event{ev}
			if len(got) != 1 || !reflect.DeepEqual(got[0], w) {
				t.Fatalf("got %+v\nwant %+v", got, w)
			}
		})
	}
	// Other kinds, and a zero weight, raise nothing.
	var n int
	d := NewDetector(DetectorOptions{})
	d.Observe(&event.Event{Kind: event.AccountChanged, User: "toor", Change: &event.Change{What: WhatUID0, Op: OpAdded}}, func(signal.Signal) { n++ })
	d.Observe(&event.Event{Kind: event.UserAdd, User: "toor"}, func(signal.Signal) { n++ })
	if n != 0 {
		t.Errorf("%d signals", n)
	}
}

// TestDetectorJoinsAuthLog: the entity of an account change is the one
// the auth sensor's useradd event would carry, "user:<name>".
func TestDetectorJoinsAuthLog(t *testing.T) {
	var got []signal.Signal
	ev := event.Event{Kind: event.AccountChanged, User: "toor", Change: &event.Change{What: WhatUID0, Op: OpAdded, Name: "toor"}}
	NewDetector(DefaultDetectorOptions()).Observe(&ev, func(s signal.Signal) { got = append(got, s) })
	if len(got) != 1 || got[0].Entities[0].String() != "user:toor" {
		t.Fatalf("got %+v", got)
	}
}
