package webshell

import (
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func fileEvent(what, path, owner, uid string, extra map[string]string) *event.Event {
	attrs := map[string]string{AttrOwner: owner, AttrUID: uid}
	for k, v := range extra {
		attrs[k] = v
	}
	return &event.Event{Time: time.Unix(1700000000, 0), Kind: event.FileChanged, Source: "fim",
		Change: &event.Change{What: what, Op: "added", Path: path, Attrs: attrs}}
}

func observe(d *Detector, ev *event.Event) []signal.Signal {
	var out []signal.Signal
	d.Observe(ev, func(s signal.Signal) { out = append(out, s) })
	return out
}

func TestDetector(t *testing.T) {
	d := NewDetector(Config{})
	shell := `<?php eval($_POST['x']); ?>`
	score, traits := Classify("x.php", []byte(shell))
	cls := map[string]string{AttrScore: "0.95", AttrTraits: strings.Join(traits, ",")}
	_ = score
	for _, c := range []struct {
		name   string
		ev     *event.Event
		rule   string
		weight float64
		ents   string
		reason string
	}{
		{"content flags, owned by deploy user", fileEvent(WhatCreated, "/var/www/html/x.php", "deploy", "1001", cls),
			RuleWebshell, 70, "file:/var/www/html/x.php user:deploy", "new script in web root /var/www/html/x.php: web shell traits (score 0.95): exec_of_request_input"},
		{"benign content but written by www-data", fileEvent(WhatChanged, "/srv/www/app/up.phtml", "www-data", "33", nil),
			RuleWebshell, 70, "file:/srv/www/app/up.phtml user:www-data", "written as web server user www-data (uid 33)"},
		{"root-owned shell", fileEvent(WhatCreated, "/var/www/a.jsp", "root", "0", cls),
			RuleWebshell, 70, "file:/var/www/a.jsp", "owner root (uid 0)"},
		{"benign script by deploy user: nothing", fileEvent(WhatCreated, "/var/www/html/index.php", "deploy", "1001", map[string]string{AttrScore: "0"}),
			"", 0, "", ""},
		{"non-script by www-data: nothing", fileEvent(WhatCreated, "/var/www/html/cache/a.json", "www-data", "33", nil),
			"", 0, "", ""},
		{"deleted script: nothing", fileEvent(WhatDeleted, "/var/www/html/x.php", "www-data", "33", cls),
			"", 0, "", ""},
		{"etc change", fileEvent(WhatChanged, "/etc/ssh/sshd_config", "root", "0", nil),
			RuleChanged, 10, "file:/etc/ssh/sshd_config", "/etc/ssh/sshd_config content changed (owner root)"},
		{"cron by user", fileEvent(WhatCreated, "/var/spool/cron/crontabs/bob", "bob", "1000", nil),
			RuleChanged, 10, "file:/var/spool/cron/crontabs/bob user:bob", "created"},
		{"mode change", &event.Event{Kind: event.FileChanged, Change: &event.Change{What: WhatMode, Path: "/etc/shadow", Before: "0640", After: "0666", Attrs: map[string]string{AttrOwner: "root", AttrUID: "0"}}},
			RuleChanged, 10, "file:/etc/shadow", "mode 0640 → 0666"},
		{"outside watched prefixes", fileEvent(WhatChanged, "/usr/lib/x86_64-linux-gnu/libz.so.1", "root", "0", nil),
			"", 0, "", ""},
		{"not a file event", &event.Event{Kind: event.ProcExec}, "", 0, "", ""},
	} {
		got := observe(d, c.ev)
		if c.rule == "" {
			if len(got) != 0 {
				t.Errorf("%s: got %+v, want nothing", c.name, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d signals", c.name, len(got))
		}
		s := got[0]
		var ents []string
		for _, e := range s.Entities {
			ents = append(ents, e.String())
		}
		if s.Rule != c.rule || s.Weight != c.weight || s.Stage != signal.Persistence || strings.Join(ents, " ") != c.ents || !strings.Contains(s.Reason, c.reason) {
			t.Errorf("%s: got %s %v %s [%s] %q", c.name, s.Rule, s.Weight, s.Stage, strings.Join(ents, " "), s.Reason)
		}
	}
}
