package accounts

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

const (
	basePasswd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
bob:x:1001:1001:Bob:/home/bob:/bin/bash
`
	baseGroup = `root:x:0:
adm:x:4:alice
sudo:x:27:alice
docker:x:998:
alice:x:1000:
bob:x:1001:
`
	baseShadow = `root:$6$aaaaaaaa$rootrootroot:19500:0:99999:7:::
daemon:*:19000:0:99999:7:::
www-data:*:19000:0:99999:7:::
alice:$6$bbbbbbbb$alicealice:19600:0:99999:7:::
bob:$6$cccccccc$bobbob:19600:0:99999:7:::
`
	baseSudoers = `Defaults env_reset
root ALL=(ALL:ALL) ALL
%sudo ALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
`
)

// fakeRoot is a private copy of the files the sensor reads.
type fakeRoot struct {
	t    *testing.T
	root string
}

func newFakeRoot(t *testing.T) *fakeRoot {
	r := &fakeRoot{t: t, root: t.TempDir()}
	r.write("/etc/passwd", basePasswd)
	r.write("/etc/group", baseGroup)
	r.write("/etc/shadow", baseShadow)
	r.write("/etc/sudoers", baseSudoers)
	r.write("/etc/sudoers.d/README", "# Files in /etc/sudoers.d are read unless they contain a '.'\n")
	r.write("/etc/login.defs", "UID_MIN 1000\nSYS_UID_MAX 999\n")
	r.write("/etc/hostname", "box\n")
	return r
}

func (r *fakeRoot) path(p string) string { return filepath.Join(r.root, p) }

func (r *fakeRoot) read(p string) string {
	data, err := os.ReadFile(r.path(p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

func (r *fakeRoot) write(p, s string) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.path(p)), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.path(p), []byte(s), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// appendLine is `echo line >> file`: an in-place write.
func (r *fakeRoot) appendLine(p, line string) {
	r.t.Helper()
	f, err := os.OpenFile(r.path(p), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		r.t.Fatal(err)
	}
}

// replace rewrites a file the way shadow-utils and editors do: write a
// new file next to it and rename it over the old one.
func (r *fakeRoot) replace(p, old, new string) {
	r.t.Helper()
	s := r.read(p)
	if !strings.Contains(s, old) {
		r.t.Fatalf("%s has no %q", p, old)
	}
	tmp := r.path(p) + "+"
	if err := os.WriteFile(tmp, []byte(strings.Replace(s, old, new, 1)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path(p)); err != nil {
		r.t.Fatal(err)
	}
}

type running struct {
	t   *testing.T
	s   *Sensor
	out chan sensor.Item
}

func startSensor(t *testing.T, s *Sensor) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Item, 64)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, d := s.Live(); d != "starting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sensor did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &running{t: t, s: s, out: out}
}

// expect waits for exactly the wanted changes (compared without time),
// then checks that nothing else follows.
func (r *running) expect(want ...event.Event) {
	r.t.Helper()
	var got []event.Event
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case it := <-r.out:
			got = append(got, *it.Event)
		case <-timeout:
			r.t.Fatalf("got %d events, want %d:\n%s", len(got), len(want), dump(got))
		}
	}
	r.quiet(150 * time.Millisecond)
	for i := range got {
		if got[i].Time.IsZero() {
			r.t.Errorf("event %d has no time", i)
		}
		got[i].Time = time.Time{}
	}
	if !reflect.DeepEqual(got, want) {
		r.t.Errorf("events:\n got %s\nwant %s", dump(got), dump(want))
	}
}

func (r *running) quiet(d time.Duration) {
	r.t.Helper()
	select {
	case it := <-r.out:
		r.t.Fatalf("unexpected event %s", dump([]event.Event{*it.Event}))
	case <-time.After(d):
	}
}

func dump(evs []event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("\n  ")
		b.WriteString(string(e.Kind) + " user=" + e.User + " target=" + e.TargetUser + " source=" + e.Source + " line=" + e.Line)
		if c := e.Change; c != nil {
			b.WriteString(" change=" + c.What + "/" + c.Op + " path=" + c.Path + " name=" + c.Name + " before=" + c.Before + " after=" + c.After)
			b.WriteString(" attrs=" + strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(strings.ReplaceAll(stringMap(c.Attrs), "\n", " ")), "map"), " ", ","))
		}
	}
	return b.String()
}

func stringMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		b.WriteString(k + "=" + m[k] + " ")
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func ev(user, source, line string, c event.Change) event.Event {
	return event.Event{Kind: event.AccountChanged, Source: source, User: user, Line: line, Change: &c}
}

func testSensor(root string) *Sensor {
	return &Sensor{Options: Options{Root: root, Interval: time.Hour, Debounce: 20 * time.Millisecond}}
}

func TestSensorAttackerEdits(t *testing.T) {
	fr := newFakeRoot(t)
	r := startSensor(t, testSensor(fr.root))
	r.quiet(200 * time.Millisecond) // the start is the baseline: no events

	// Unrelated edits: comments and blank lines in sudoers, another file in /etc.
	fr.appendLine("/etc/sudoers", "# a comment\n")
	fr.appendLine("/etc/sudoers.d/README", "#   another comment")
	fr.write("/etc/hostname", "box2\n")
	fr.replace("/etc/sudoers", "root ALL=(ALL:ALL) ALL", "root\tALL = (ALL : ALL)   ALL")
	r.quiet(300 * time.Millisecond)

	// echo 'toor:x:0:0::/root:/bin/bash' >> /etc/passwd, with an empty password.
	fr.appendLine("/etc/passwd", "toor:x:0:0::/root:/bin/bash")
	fr.appendLine("/etc/shadow", "toor::19700:0:99999:7:::")
	r.expect(
		ev("toor", "file:/etc/passwd", "toor:x:0:0::/root:/bin/bash", event.Change{What: WhatUID0, Op: OpAdded, Path: PathPasswd,
			Name: "toor", After: "toor:x:0:0::/root:/bin/bash", Attrs: map[string]string{"uid": "0", "gid": "0", "home": "/root", "shell": "/bin/bash", "line": "6"}}),
		ev("toor", "file:/etc/shadow", "", event.Change{What: WhatPasswordRemoved, Op: OpAdded, Path: PathShadow,
			Name: "toor", Before: "none", After: "empty"}),
	)

	// usermod -aG sudo bob; usermod -g docker alice's... primary group.
	fr.replace("/etc/group", "sudo:x:27:alice", "sudo:x:27:alice,bob")
	r.expect(event.Event{Kind: event.AccountChanged, Source: "file:/etc/group", User: "bob", TargetUser: "sudo",
		Change: &event.Change{What: WhatPrivilegedGroup, Op: OpAdded, Path: PathGroup, Name: "bob", After: "sudo",
			Attrs: map[string]string{"group": "sudo", "gid": "27", "via": "member list"}}})
	fr.replace("/etc/passwd", "bob:x:1001:1001:", "bob:x:1001:998:")
	r.expect(event.Event{Kind: event.AccountChanged, Source: "file:/etc/passwd", User: "bob", TargetUser: "docker",
		Change: &event.Change{What: WhatPrivilegedGroup, Op: OpAdded, Path: PathPasswd, Name: "bob", After: "docker",
			Attrs: map[string]string{"group": "docker", "gid": "998", "via": "primary group"}}})

	// usermod -s /bin/bash www-data
	fr.replace("/etc/passwd", "/var/www:/usr/sbin/nologin", "/var/www:/bin/bash")
	r.expect(ev("www-data", "file:/etc/passwd", "www-data:x:33:33:www-data:/var/www:/bin/bash", event.Change{What: WhatSystemShell,
		Op: OpModified, Path: PathPasswd, Name: "www-data", Before: "/usr/sbin/nologin", After: "/bin/bash",
		Attrs: map[string]string{"uid": "33", "gid": "33", "home": "/var/www", "shell": "/bin/bash", "line": "3"}}))

	// passwd -d alice
	fr.replace("/etc/shadow", "alice:$6$bbbbbbbb$alicealice:", "alice::")
	r.expect(ev("alice", "file:/etc/shadow", "", event.Change{What: WhatPasswordRemoved, Op: OpModified, Path: PathShadow,
		Name: "alice", Before: "set", After: "empty"}))

	// A sudoers.d drop-in.
	fr.write("/etc/sudoers.d/zz-backdoor", "bob ALL=(ALL) NOPASSWD: ALL\n")
	r.expect(ev("bob", "file:/etc/sudoers.d/zz-backdoor", "bob ALL=(ALL) NOPASSWD: ALL", event.Change{What: WhatSudoNoPasswd, Op: OpAdded,
		Path: "/etc/sudoers.d/zz-backdoor", Name: "bob", After: "bob ALL=(ALL) NOPASSWD: ALL",
		Attrs: map[string]string{"line": "1", "rule": "bob ALL=(ALL) NOPASSWD: ALL", "runas": "ALL", "commands": "ALL"}}))
	// ... and a plain rule for a group appended to sudoers.
	fr.appendLine("/etc/sudoers", "%docker ALL=(root) /usr/bin/docker")
	r.expect(ev("", "file:/etc/sudoers", "%docker ALL=(root) /usr/bin/docker", event.Change{What: WhatSudoRule, Op: OpAdded,
		Path: "/etc/sudoers", Name: "%docker", After: "%docker ALL=(root) /usr/bin/docker",
		Attrs: map[string]string{"line": "7", "rule": "%docker ALL=(root) /usr/bin/docker", "runas": "root", "commands": "/usr/bin/docker"}}))

	// useradd-like: a regular account, then userdel.
	fr.appendLine("/etc/passwd", "eve:x:1002:1002::/home/eve:/bin/sh")
	r.expect(ev("eve", "file:/etc/passwd", "eve:x:1002:1002::/home/eve:/bin/sh", event.Change{What: WhatAccountAdded, Op: OpAdded,
		Path: PathPasswd, Name: "eve", After: "eve:x:1002:1002::/home/eve:/bin/sh",
		Attrs: map[string]string{"uid": "1002", "gid": "1002", "home": "/home/eve", "shell": "/bin/sh", "line": "7"}}))
	fr.replace("/etc/passwd", "eve:x:1002:1002::/home/eve:/bin/sh\n", "")
	r.expect(ev("eve", "file:/etc/passwd", "eve:x:1002:1002::/home/eve:/bin/sh", event.Change{What: WhatAccountRemoved, Op: OpRemoved,
		Path: PathPasswd, Name: "eve", Before: "eve:x:1002:1002::/home/eve:/bin/sh",
		Attrs: map[string]string{"uid": "1002", "gid": "1002", "home": "/home/eve", "shell": "/bin/sh", "line": "7"}}))

	// Existing account turned into uid 0.
	fr.replace("/etc/passwd", "alice:x:1000:1000:", "alice:x:0:1000:")
	r.expect(ev("alice", "file:/etc/passwd", "alice:x:0:1000:Alice:/home/alice:/bin/bash", event.Change{What: WhatUID0, Op: OpModified,
		Path: PathPasswd, Name: "alice", Before: "alice:x:1000:1000:Alice:/home/alice:/bin/bash", After: "alice:x:0:1000:Alice:/home/alice:/bin/bash",
		Attrs: map[string]string{"uid": "0", "gid": "1000", "home": "/home/alice", "shell": "/bin/bash", "line": "4"}}))

	if degraded, detail := r.s.Live(); degraded {
		t.Errorf("degraded: %s", detail)
	}
}

// TestSensorPollOnly covers the periodic check alone (no inotify: an
// overlay or network filesystem, or the watch limit reached).
func TestSensorPollOnly(t *testing.T) {
	fr := newFakeRoot(t)
	s := testSensor(fr.root)
	s.Options.Interval = 50 * time.Millisecond
	s.noNotify = true
	r := startSensor(t, s)
	r.quiet(200 * time.Millisecond)
	fr.appendLine("/etc/sudoers", "Defaults:bob !authenticate")
	r.quiet(300 * time.Millisecond)
	if degraded, detail := s.Live(); !degraded || !strings.Contains(detail, "polling only") {
		t.Errorf("Live = %v %q", degraded, detail)
	}
	// bob has no rule of his own, so !authenticate alone grants nothing;
	// give him one and it is passwordless.
	fr.appendLine("/etc/sudoers", "bob ALL=(ALL) /usr/bin/apt")
	r.expect(ev("bob", "file:/etc/sudoers", "bob ALL=(ALL) /usr/bin/apt", event.Change{What: WhatSudoNoPasswd, Op: OpAdded,
		Path: "/etc/sudoers", Name: "bob", After: "bob ALL=(ALL) NOPASSWD: /usr/bin/apt", Attrs: map[string]string{"line": "6",
			"rule": "bob ALL=(ALL) /usr/bin/apt", "runas": "ALL", "commands": "/usr/bin/apt", "nopasswd_by": "Defaults !authenticate"}}))
}

// memStore is the Store the agent would back with its database.
type memStore struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (m *memStore) LoadBaseline(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[name], nil
}

func (m *memStore) SaveBaseline(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[name] = data
	return nil
}

func (m *memStore) get(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[name]
}

// TestSensorStoredBaseline: a change made while the agent was down is
// reported at the next start; and the stored baseline holds no hash.
func TestSensorStoredBaseline(t *testing.T) {
	fr := newFakeRoot(t)
	store := &memStore{data: map[string][]byte{}}
	s := testSensor(fr.root)
	s.Store = store
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Item, 16)
	done := make(chan error)
	go func() { done <- s.Run(ctx, out) }()
	for store.get(SensorName) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if strings.Contains(string(store.get(SensorName)), "$6$") {
		t.Fatal("stored baseline holds a hash")
	}
	fr.appendLine("/etc/group", "lxd:x:997:bob")
	s2 := testSensor(fr.root)
	s2.Store = store
	r := startSensor(t, s2)
	r.expect(event.Event{Kind: event.AccountChanged, Source: "file:/etc/group", User: "bob", TargetUser: "lxd",
		Change: &event.Change{What: WhatPrivilegedGroup, Op: OpAdded, Path: PathGroup, Name: "bob", After: "lxd",
			Attrs: map[string]string{"group": "lxd", "gid": "997", "via": "member list"}}})
}

// TestSensorIncludedirCreated: an includedir that does not exist yet is
// watched for, and a drop-in written into it once created is seen.
func TestSensorIncludedirCreated(t *testing.T) {
	fr := newFakeRoot(t)
	if err := os.RemoveAll(fr.path("/etc/sudoers.d")); err != nil {
		t.Fatal(err)
	}
	r := startSensor(t, testSensor(fr.root))
	r.quiet(100 * time.Millisecond)
	fr.write("/etc/sudoers.d/x", "eve ALL=(ALL) ALL\n")
	r.expect(ev("eve", "file:/etc/sudoers.d/x", "eve ALL=(ALL) ALL", event.Change{What: WhatSudoRule, Op: OpAdded,
		Path: "/etc/sudoers.d/x", Name: "eve", After: "eve ALL=(ALL) ALL",
		Attrs: map[string]string{"line": "1", "rule": "eve ALL=(ALL) ALL", "runas": "ALL", "commands": "ALL"}}))
}
