package pipeline

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// cet is the host zone of the recorded week: the daily cycles below are
// local-time habits, and the baseline reads hours in this zone.
var cet = time.FixedZone("CET", 3600)

// weekStart is Monday 2026-03-02 00:00 CET.
var weekStart = time.Date(2026, 3, 2, 0, 0, 0, 0, cet)

const accessLog = "file:/var/log/nginx/access.log"

// quietWeek generates seven days of a small web server's normal life from
// start, deterministically from seed (two seeds: two different weeks of
// the same habits):
//   - cron runs a backup every hour and logrotate at 00:00;
//   - the web site serves a daily cycle (busy at lunch, quiet at night)
//     to a pool of clients in a few /24s, ~3% 404s, php-fpm talking to
//     the database;
//   - alice logs in by key from the office at about 09h and 17h on
//     weekdays, the deploy user at about 14h: git pull, a restart, the
//     app's cron file rewritten with the same lines;
//   - unattended-upgrade updates a library under /usr/lib on Tuesday and
//     Friday mornings (dpkg runs, the file changes, apt talks to the
//     mirror).
func quietWeek(start time.Time, seed uint64) []*event.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	var evs []*event.Event
	pid := 1000
	next := func() int { pid++; return pid }
	exec := func(at time.Time, user string, uid int, exe, parent string, ppid int) *event.Event {
		return &event.Event{Time: at, Kind: event.ProcExec, Proc: &event.Process{PID: next(), PPID: ppid, UID: uid, User: user,
			Comm: base(exe), Exe: exe, Lineage: []event.Ancestor{{PID: ppid, Comm: base(parent), Exe: parent}}}}
	}
	jitter := func(max time.Duration) time.Duration { return time.Duration(r.Int64N(int64(max))) }
	for d := range 7 {
		day := start.AddDate(0, 0, d)
		weekday := day.Weekday() != time.Saturday && day.Weekday() != time.Sunday
		// nginx is (re)started at midnight by logrotate's postrotate.
		evs = append(evs, exec(day, "root", 0, "/usr/sbin/logrotate", "/usr/sbin/cron", 900),
			&event.Event{Time: day.Add(time.Second), Kind: event.NetListen, Proc: &event.Process{PID: 812, Comm: "nginx", Exe: "/usr/sbin/nginx"},
				Net: &event.Socket{Proto: "tcp", LPort: 443}})
		for h := range 24 {
			at := day.Add(time.Duration(h)*time.Hour + 5*time.Minute + jitter(time.Minute))
			sh := exec(at, "root", 0, "/usr/bin/dash", "/usr/sbin/cron", 900)
			evs = append(evs, sh, exec(at.Add(time.Second), "root", 0, "/usr/local/bin/backup", "/usr/bin/dash", sh.Proc.PID),
				&event.Event{Time: at.Add(2 * time.Second), Kind: event.NetConnect, Proc: &event.Process{PID: pid, Exe: "/usr/local/bin/backup", Comm: "backup"},
					Net: &event.Socket{Proto: "tcp", Remote: netip.MustParseAddr("10.0.0.9"), RPort: 873}})
		}
		// Web traffic: per minute, a rate following the hour of day.
		for m := range 24 * 60 {
			at := day.Add(time.Duration(m) * time.Minute)
			h := m / 60
			rate := 4 + 30*max(0, 6-abs(h-13))/6 + 10*max(0, 3-abs(h-20))/3 // lunch peak, evening bump
			n := rate + r.IntN(rate/4+2) - rate/8
			for i := range n {
				client := netip.AddrFrom4([4]byte{203, 0, 113 + byte(r.IntN(3)), byte(10 + r.IntN(60))})
				status := 200
				if r.IntN(100) < 3 {
					status = 404
				}
				evs = append(evs, &event.Event{Time: at.Add(time.Duration(i) * time.Minute / time.Duration(n+1)), Kind: event.WebRequest,
					Source: accessLog, Addr: client, HTTPMethod: "GET", Path: fmt.Sprintf("/page/%d", r.IntN(100)), Status: status})
			}
			if m%10 == 0 {
				evs = append(evs, &event.Event{Time: at, Kind: event.NetConnect, Proc: &event.Process{PID: 1201, Exe: "/usr/sbin/php-fpm8.2", Comm: "php-fpm8.2", User: "www-data", UID: 33},
					Net: &event.Socket{Proto: "tcp", Remote: netip.AddrFrom4([4]byte{10, 0, 0, byte(5 + r.IntN(3))}), RPort: 5432}})
			}
		}
		if weekday {
			for _, h := range []int{9, 17} {
				at := day.Add(time.Duration(h)*time.Hour + jitter(40*time.Minute))
				evs = append(evs, &event.Event{Time: at, Kind: event.AuthSuccess, User: "alice", Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(20 + r.IntN(5))}), Method: "publickey", Port: 50000},
					exec(at.Add(time.Second), "alice", 1000, "/usr/bin/bash", "/usr/sbin/sshd", 700),
					exec(at.Add(time.Minute), "root", 0, "/usr/bin/sudo", "/usr/bin/bash", pid))
			}
		}
		// The daily deploy.
		at := day.Add(14*time.Hour + jitter(30*time.Minute))
		sh := exec(at.Add(time.Second), "deploy", 1001, "/usr/bin/bash", "/usr/sbin/sshd", 700)
		evs = append(evs,
			&event.Event{Time: at, Kind: event.AuthSuccess, User: "deploy", Addr: netip.MustParseAddr("192.0.2.40"), Method: "publickey", Port: 50001},
			sh,
			exec(at.Add(2*time.Second), "deploy", 1001, "/usr/bin/git", "/usr/bin/bash", sh.Proc.PID),
			&event.Event{Time: at.Add(3 * time.Second), Kind: event.NetConnect, Proc: &event.Process{PID: pid, Exe: "/usr/bin/git", Comm: "git", User: "deploy", UID: 1001},
				Net: &event.Socket{Proto: "tcp", Remote: netip.MustParseAddr("140.82.121.4"), RPort: 22}},
			exec(at.Add(20*time.Second), "deploy", 1001, "/usr/bin/sudo", "/usr/bin/bash", sh.Proc.PID),
			exec(at.Add(21*time.Second), "root", 0, "/usr/bin/systemctl", "/usr/bin/sudo", pid),
			&event.Event{Time: at.Add(22 * time.Second), Kind: event.PersistChanged, User: "root", Change: &event.Change{What: "cron_line", Op: "modified",
				Path: "/etc/cron.d/app", After: "*/5 * * * * app /srv/app/bin/tick\n0 3 * * * app /srv/app/bin/cleanup --keep 7"}},
			&event.Event{Time: at.Add(23 * time.Second), Kind: event.FileChanged, Source: "fim", User: "deploy", Change: &event.Change{What: "file_modified", Op: "modified",
				Path: "/srv/app/current/index.php", After: fmt.Sprintf("sha256:%064x", r.Uint64())}},
		)
		// Package updates.
		if day.Weekday() == time.Tuesday || day.Weekday() == time.Friday {
			at := day.Add(6*time.Hour + jitter(time.Hour))
			u := exec(at, "root", 0, "/usr/bin/unattended-upgrade", "/usr/bin/python3", 1)
			u.Proc.Comm = "unattended-upgr"
			evs = append(evs, u,
				&event.Event{Time: at.Add(5 * time.Second), Kind: event.NetConnect, Proc: &event.Process{PID: u.Proc.PID, Exe: "/usr/bin/python3.11", Comm: "unattended-upgr"},
					Net: &event.Socket{Proto: "tcp", Remote: netip.MustParseAddr("151.101.2.132"), RPort: 80}},
				exec(at.Add(30*time.Second), "root", 0, "/usr/bin/dpkg", "/usr/bin/python3.11", u.Proc.PID),
				&event.Event{Time: at.Add(40 * time.Second), Kind: event.FileChanged, Source: "fim", User: "root", Change: &event.Change{What: "file_modified", Op: "modified",
					Path: "/usr/lib/x86_64-linux-gnu/libssl.so.3", After: fmt.Sprintf("sha256:%064x", r.Uint64())}},
			)
		}
	}
	sortEvents(evs)
	return evs
}

func base(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sortEvents(evs []*event.Event) {
	// Stable: events of one instant keep their causal order.
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
}
