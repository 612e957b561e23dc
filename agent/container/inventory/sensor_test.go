package inventory

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
)

var t0 = time.Date(2025, 6, 12, 10, 0, 0, 0, time.UTC)

func poll(t *testing.T, s *Sensor, n int) []event.Event {
	t.Helper()
	evs, err := s.Poll(context.Background(), t0.Add(time.Duration(n)*time.Second))
	if err != nil {
		t.Fatalf("poll %d: %v", n, err)
	}
	return evs
}

// brief renders events as "op name detail" for comparison.
func brief(evs []event.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, strings.TrimSpace(ev.Change.Op+" "+ev.Change.Name+" "+ev.Detail))
	}
	return strings.Join(s, "; ")
}

func TestInventoryLifecycle(t *testing.T) {
	d := newFakeDaemon(t, "")
	d.add(t, "inspect.json")
	s := New(Options{Socket: d.socket, Timeout: time.Second})
	ctx := context.Background()

	// The first poll is the baseline: what runs is reported once, marked
	// initial, with the version asked once.
	evs := poll(t, s, 1)
	if got := brief(evs); got != "added web-1 initial" {
		t.Fatalf("poll 1 = %q", got)
	}
	web := evs[0]
	if web.Kind != event.ContainerChanged || web.Source != "docker:"+d.socket || !web.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("event = %+v", web)
	}
	if c := web.Proc.Container; c == nil || *c != (event.Container{Runtime: "docker", ID: webID, Name: "web-1", Image: "nginx:1.27"}) {
		t.Errorf("container = %+v", web.Proc.Container)
	}
	if web.Proc.PID != 0 {
		t.Errorf("pid = %d, want none", web.Proc.PID)
	}
	wantAttrs := map[string]string{AttrID: webID, AttrImage: "nginx:1.27", AttrPrivileged: "false", AttrNetworkMode: "bridge",
		AttrImageID: "sha256:9592f5595f2b12c2ede5d2ce9ec936b33fc328225a00b3901b96019e3dd83528"}
	if !equalMaps(web.Change.Attrs, wantAttrs) {
		t.Errorf("attrs = %v\nwant    %v", web.Change.Attrs, wantAttrs)
	}
	if web.Change.What != WhatContainer || web.Change.After != "image nginx:1.27; network bridge" || web.Change.Before != "" {
		t.Errorf("change = %+v", web.Change)
	}
	if got := strings.Join(d.takeRequests(), " "); got != "/version /v1.50/containers/json /v1.50/containers/"+webID+"/json" {
		t.Errorf("requests = %s", got)
	}

	// A new container.
	d.add(t, "inspect-admin.json")
	evs = poll(t, s, 2)
	if got := brief(evs); got != "added admin-tools" {
		t.Fatalf("poll 2 = %q", got)
	}
	a := evs[0].Change
	wantAttrs = map[string]string{
		AttrID: adminID, AttrImage: "registry.example.com/ops/admin-tools:2.4",
		AttrImageID:    "sha256:6d3e4188a38af91b0c1577b9e88c53368926b2fe0e1fb985d6e8a70040520c4d",
		AttrPrivileged: "true", AttrCapAdd: "NET_RAW,SYS_ADMIN", AttrNetworkMode: "host", AttrPidMode: "host",
		AttrMounts:  "/etc/localtime:/etc/localtime:ro,/etc:/host-etc:ro,/srv/app:/app:rw,/var/run/docker.sock:/var/run/docker.sock:rw",
		AttrVolumes: "tools-cache",
	}
	if !equalMaps(a.Attrs, wantAttrs) {
		t.Errorf("attrs = %v\nwant    %v", a.Attrs, wantAttrs)
	}
	wantAfter := "image registry.example.com/ops/admin-tools:2.4; privileged; cap_add NET_RAW,SYS_ADMIN; network host; pid host; " +
		"mounts /etc/localtime:/etc/localtime:ro /etc:/host-etc:ro /srv/app:/app:rw /var/run/docker.sock:/var/run/docker.sock:rw; volumes tools-cache"
	if a.After != wantAfter {
		t.Errorf("after = %q\nwant    %q", a.After, wantAfter)
	}

	// Nothing changed: one list request, no inspection.
	d.takeRequests()
	if evs := poll(t, s, 3); len(evs) != 0 {
		t.Errorf("poll 3 = %q, want nothing", brief(evs))
	}
	if got := strings.Join(d.takeRequests(), " "); got != "/v1.50/containers/json" {
		t.Errorf("unchanged poll requests = %s", got)
	}

	// A rename is a modification, with the old description kept.
	d.set(func(d *fakeDaemon) { d.containers[webID]["Name"] = "/web-2" })
	evs = poll(t, s, 4)
	if got := brief(evs); got != "modified web-2" {
		t.Fatalf("poll 4 = %q", got)
	}
	if c := evs[0].Change; c.Before != "image nginx:1.27; network bridge" || c.After != c.Before || evs[0].Proc.Container.Name != "web-2" {
		t.Errorf("rename = %+v", c)
	}

	// A listed container the daemon no longer knows when inspected is
	// being removed: not news yet.
	d.add(t, "inspect-admin.json")
	d.set(func(d *fakeDaemon) {
		d.containers[adminID]["Name"] = "/admin-tools-2"
		d.hidden[adminID] = true
	})
	evs = poll(t, s, 5)
	if got := brief(evs); got != "removed admin-tools" {
		t.Fatalf("poll 5 = %q", got)
	}
	if c := evs[0].Change; c.Before != wantAfter || c.After != "" || c.Attrs[AttrPrivileged] != "true" {
		t.Errorf("removal = %+v", c)
	}

	// The list failing changes nothing: no removals, retried next time.
	d.set(func(d *fakeDaemon) {
		delete(d.containers, adminID)
		d.failList = true
	})
	if evs, err := s.Poll(ctx, t0.Add(6*time.Second)); err == nil || len(evs) != 0 {
		t.Errorf("failing list: %q, %v", brief(evs), err)
	}
	if degraded, detail := s.Live(); !degraded || !strings.Contains(detail, "boom") {
		t.Errorf("Live after failure = %v %q", degraded, detail)
	}
	d.set(func(d *fakeDaemon) { d.failList = false })
	if evs := poll(t, s, 7); len(evs) != 0 {
		t.Errorf("after recovery = %q, want nothing", brief(evs))
	}

	// Stopped: removed.
	d.set(func(d *fakeDaemon) { delete(d.containers, webID) })
	if got := brief(poll(t, s, 8)); got != "removed web-2" {
		t.Errorf("poll 8 = %q", got)
	}
	st := s.Stats()
	if st.Polls != 7 || st.Errors != 1 || st.Running != 0 || st.Daemon != "28.2.2" || st.APIVersion != "1.50" {
		t.Errorf("stats = %+v", st)
	}
	if degraded, detail := s.Live(); degraded || detail != "docker 28.2.2 (API 1.50) at "+d.socket+": 0 running containers, polled every 10s" {
		t.Errorf("Live = %v %q", degraded, detail)
	}
}

func TestInventoryNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	s := New(Options{Socket: sock, Timeout: time.Second})
	if degraded, detail := s.Live(); degraded || detail != "starting" {
		t.Errorf("Live before polling = %v %q", degraded, detail)
	}
	for i := range 2 {
		if evs, err := s.Poll(context.Background(), t0); err == nil || len(evs) != 0 {
			t.Fatalf("poll %d without daemon: %v, %d events", i, err, len(evs))
		}
	}
	degraded, detail := s.Live()
	if degraded || detail != "no docker daemon at "+sock+"; checking every 10s" {
		t.Errorf("Live without daemon = %v %q", degraded, detail)
	}
	if st := s.Stats(); st.Errors != 0 || st.LastError != "" || !st.NoDaemon {
		t.Errorf("stats = %+v; a missing daemon is not an error", st)
	}

	// The daemon starts later: its containers are the baseline.
	d := newFakeDaemon(t, sock)
	d.add(t, "inspect-admin.json")
	if got := brief(poll(t, s, 1)); got != "added admin-tools initial" {
		t.Errorf("first poll with daemon = %q", got)
	}
	if degraded, detail := s.Live(); degraded || !strings.Contains(detail, "1 running containers") {
		t.Errorf("Live = %v %q", degraded, detail)
	}
}

func TestInventoryInitialRetried(t *testing.T) {
	// A container the first poll could not inspect is still reported as
	// initial once it can be: it was running before the agent.
	d := newFakeDaemon(t, "")
	d.add(t, "inspect.json")
	d.add(t, "inspect-admin.json")
	s := New(Options{Socket: d.socket, Timeout: time.Second})
	d.set(func(d *fakeDaemon) { d.broken[adminID] = true })
	evs, err := s.Poll(context.Background(), t0)
	if err == nil || brief(evs) != "added web-1 initial" {
		t.Fatalf("first poll = %q, %v", brief(evs), err)
	}
	if degraded, detail := s.Live(); !degraded || !strings.Contains(detail, "last poll failed") {
		t.Errorf("Live = %v %q", degraded, detail)
	}
	d.set(func(d *fakeDaemon) { delete(d.broken, adminID) })
	if got := brief(poll(t, s, 1)); got != "added admin-tools initial" {
		t.Errorf("second poll = %q", got)
	}
	if got := brief(poll(t, s, 2)); got != "" {
		t.Errorf("third poll = %q", got)
	}
}

func TestInventoryMax(t *testing.T) {
	d := newFakeDaemon(t, "")
	d.add(t, "inspect.json")
	d.add(t, "inspect-admin.json")
	s := New(Options{Socket: d.socket, Timeout: time.Second, MaxContainers: 1})
	// Admitted in id order: adminID sorts first.
	if got := brief(poll(t, s, 1)); got != "added admin-tools initial" {
		t.Errorf("poll 1 = %q", got)
	}
	if got := brief(poll(t, s, 2)); got != "" {
		t.Errorf("poll 2 = %q; the container over the bound must not be reported", got)
	}
	if degraded, detail := s.Live(); !degraded || !strings.Contains(detail, "1 containers over the limit of 1") {
		t.Errorf("Live = %v %q", degraded, detail)
	}
	// Room again: the other one is news now.
	d.set(func(d *fakeDaemon) { delete(d.containers, adminID) })
	if got := brief(poll(t, s, 3)); got != "added web-1; removed admin-tools" {
		t.Errorf("poll 3 = %q", got)
	}
}

func TestInventoryRun(t *testing.T) {
	d := newFakeDaemon(t, "")
	d.add(t, "inspect.json")
	s := New(Options{Socket: d.socket, Interval: 20 * time.Millisecond, Timeout: time.Second})
	var _ sensor.Sensor = s
	if s.Name() != "containers" {
		t.Errorf("Name = %q", s.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan sensor.Item)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	next := func() *event.Event {
		t.Helper()
		select {
		case it := <-out:
			return it.Event
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return nil
		}
	}
	if ev := next(); ev.Change.Op != "added" || ev.Detail != DetailInitial {
		t.Errorf("first = %+v", ev.Change)
	}
	d.add(t, "inspect-admin.json")
	if ev := next(); ev.Change.Op != "added" || ev.Change.Name != "admin-tools" || ev.Detail != "" {
		t.Errorf("second = %+v %q", ev.Change, ev.Detail)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v", err)
	}
}

func TestParseMounts(t *testing.T) {
	in := []BindMount{{"/etc", "/host-etc", false}, {"/srv/a,b:c%d", "/x:y", true}}
	var enc []string
	for _, m := range in {
		enc = append(enc, escapeMountPath(m.Source)+":"+escapeMountPath(m.Destination)+":"+rwMode(m.RW))
	}
	attr := strings.Join(enc, ",")
	if attr != "/etc:/host-etc:ro,/srv/a%2Cb%3Ac%25d:/x%3Ay:rw" {
		t.Errorf("encoded = %q", attr)
	}
	got := ParseMounts(attr + ",garbage,:/x:rw,/a:/b:ro:extra")
	if len(got) != 2 || got[0] != in[0] || got[1] != in[1] {
		t.Errorf("ParseMounts = %+v", got)
	}
	if ParseMounts("") != nil {
		t.Error("ParseMounts(\"\") not empty")
	}
}

func TestNormalizeCaps(t *testing.T) {
	got := strings.Join(normalizeCaps([]string{"CAP_SYS_ADMIN", "net_admin", "SYS_ADMIN", " ", "cap_ALL"}), ",")
	if got != "ALL,NET_ADMIN,SYS_ADMIN" {
		t.Errorf("normalizeCaps = %q", got)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
