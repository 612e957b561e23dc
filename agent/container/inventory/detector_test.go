package inventory

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

func containerEvent(op, detail, name string, attrs map[string]string) *event.Event {
	return &event.Event{Time: t0, Kind: event.ContainerChanged, Detail: detail,
		Proc:   &event.Process{Container: &event.Container{Runtime: "docker", ID: attrs[AttrID], Name: name, Image: attrs[AttrImage]}},
		Change: &event.Change{What: WhatContainer, Op: op, Name: name, Attrs: attrs}}
}

func observe(d *Detector, ev *event.Event) []signal.Signal {
	var out []signal.Signal
	d.Observe(ev, func(s signal.Signal) { out = append(out, s) })
	return out
}

// render is "rule weight: reason" per signal.
func render(ss []signal.Signal) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s.Rule + " " + strconv.FormatFloat(s.Weight, 'g', -1, 64) + ": " + s.Reason + "\n")
	}
	return b.String()
}

func TestDetectorRules(t *testing.T) {
	d := NewDetector(DefaultDetectorOptions())
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name   string
		op     string
		detail string
		attrs  map[string]string
		want   string
	}{
		{name: "plain", op: "added", attrs: map[string]string{AttrPrivileged: "false", AttrNetworkMode: "bridge",
			AttrMounts: "/srv/www:/usr/share/nginx/html:ro,/etc/localtime:/etc/localtime:ro,/etc/ssl/certs:/etc/ssl/certs:ro"}},
		{name: "socket", op: "added", attrs: map[string]string{AttrPrivileged: "false",
			AttrMounts: "/var/run/docker.sock:/var/run/docker.sock:rw"},
			want: `container.host_mount 60: container "web" (nginx:1.25) mounts host /var/run/docker.sock read-write` + "\n"},
		{name: "everything", op: "added", attrs: map[string]string{AttrPrivileged: "true", AttrNetworkMode: "host", AttrPidMode: "host",
			AttrCapAdd: "CHOWN,NET_ADMIN,SYS_ADMIN", AttrMounts: "/:/host:ro,/etc:/host-etc:ro,/run/docker.sock:/run/docker.sock:rw"},
			want: `container.privileged 50: container "web" (nginx:1.25) runs privileged (all capabilities, host devices, no seccomp or AppArmor)` + "\n" +
				`container.host_mount 60: container "web" (nginx:1.25) mounts host / read-only at /host, host /etc read-only at /host-etc, host /run/docker.sock read-write` + "\n" +
				`container.host_namespace 30: container "web" (nginx:1.25) shares the host's network and PID namespaces` + "\n" +
				`container.dangerous_caps 40: container "web" (nginx:1.25) adds capabilities NET_ADMIN, SYS_ADMIN` + "\n"},
		{name: "pid only", op: "modified", attrs: map[string]string{AttrPidMode: "host", AttrNetworkMode: "container:" + id},
			want: `container.host_namespace 30: container "web" (nginx:1.25) shares the host's PID namespace` + "\n"},
		{name: "initial", op: "added", detail: DetailInitial, attrs: map[string]string{AttrNetworkMode: "host"},
			want: `container.host_namespace 30: container "web" (nginx:1.25) shares the host's network namespace, running when the agent started` + "\n"},
		{name: "removed", op: "removed", attrs: map[string]string{AttrPrivileged: "true"}},
		{name: "ancestor and below", op: "added", attrs: map[string]string{AttrMounts: "/var:/v:ro,/root/.ssh:/ssh:ro,/usr:/usr:ro,/home/alice:/data:rw"},
			want: `container.host_mount 60: container "web" (nginx:1.25) mounts host /var read-only at /v, host /root/.ssh read-only at /ssh, host /home/alice read-write at /data` + "\n"},
		{name: "all caps", op: "added", attrs: map[string]string{AttrCapAdd: "ALL"},
			want: `container.dangerous_caps 40: container "web" (nginx:1.25) adds capabilities ALL` + "\n"},
	} {
		attrs := map[string]string{AttrID: id, AttrImage: "nginx:1.25"}
		for k, v := range c.attrs {
			attrs[k] = v
		}
		got := observe(d, containerEvent(c.op, c.detail, "web", attrs))
		if r := render(got); r != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, r, c.want)
		}
		for _, s := range got {
			if s.Stage != signal.PrivilegeEscalation || len(s.Entities) != 1 || s.Entities[0] != (signal.Entity{Kind: signal.Container, Value: id}) ||
				len(s.Evidence) != 1 || !s.Time.Equal(t0) {
				t.Errorf("%s: signal %+v", c.name, s)
			}
		}
	}

	// Other kinds and malformed events are ignored.
	for _, ev := range []*event.Event{
		{Kind: event.FileChanged, Change: &event.Change{What: WhatContainer, Op: "added", Attrs: map[string]string{AttrID: id, AttrPrivileged: "true"}}},
		{Kind: event.ContainerChanged},
		{Kind: event.ContainerChanged, Change: &event.Change{What: WhatContainer, Op: "added", Attrs: map[string]string{AttrPrivileged: "true"}}},
	} {
		if got := observe(d, ev); len(got) != 0 {
			t.Errorf("%+v: %s", ev, render(got))
		}
	}
}

func TestDetectorOptions(t *testing.T) {
	o := DefaultDetectorOptions()
	o.PrivilegedWeight = 0
	o.HostPaths = []string{"/srv/secrets"}
	o.DangerousCaps = []string{"cap_net_raw"}
	o.SkipInitial = true
	d := NewDetector(o)
	attrs := map[string]string{AttrID: webID, AttrPrivileged: "true", AttrCapAdd: "NET_RAW,SYS_ADMIN",
		AttrMounts: "/etc:/etc:ro,/srv/secrets/db:/secrets:ro"}
	want := `container.host_mount 60: container "web-1" mounts host /srv/secrets/db read-only at /secrets` + "\n" +
		`container.dangerous_caps 40: container "web-1" adds capabilities NET_RAW` + "\n"
	if got := render(observe(d, containerEvent("added", "", "web-1", attrs))); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if got := observe(d, containerEvent("added", DetailInitial, "web-1", attrs)); len(got) != 0 {
		t.Errorf("SkipInitial: %s", render(got))
	}
	// No name: the short id stands in.
	if got := render(observe(d, containerEvent("added", "", "", map[string]string{AttrID: webID, AttrCapAdd: "NET_RAW"}))); got != `container.dangerous_caps 40: container "ade4c0898f98" adds capabilities NET_RAW`+"\n" {
		t.Errorf("unnamed: %s", got)
	}
}

func TestSensitive(t *testing.T) {
	d := NewDetector(DefaultDetectorOptions())
	for p, want := range map[string]bool{
		"/": true, "/etc": true, "/etc/": true, "/etc/shadow": true, "/etc/localtime": false, "/etc/ssl/certs/ca.pem": false,
		"/var": true, "/var/run": true, "/var/run/docker.sock": true, "/run": true, "/run/docker.sock": true, "/run/user/1000": false,
		"/var/lib/docker/volumes/x/_data": true, "/var/lib/mysql": false, "/var/log": false, "/usr": false, "/srv/app": false,
		"/dev": true, "/dev/null": false, "/dev/sda": true, "/sys/fs/cgroup": true, "/proc": true, "/home": true, "/home/alice/app": true,
		"/root": true, "/boot": true, "/etc/../etc/passwd": true, "": false, "relative/etc": false,
	} {
		if got := d.Sensitive(p); got != want {
			t.Errorf("Sensitive(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestSensorToDetector runs the recorded privileged container through the
// sensor and the detector, as the pipeline does.
func TestSensorToDetector(t *testing.T) {
	f := newFakeDaemon(t, "")
	s := New(Options{Socket: f.socket, Timeout: time.Second})
	if _, err := s.Poll(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	f.add(t, "inspect.json")
	f.add(t, "inspect-admin.json")
	evs, err := s.Poll(context.Background(), t0.Add(time.Second))
	if err != nil || len(evs) != 2 {
		t.Fatalf("poll: %d events, %v", len(evs), err)
	}
	d := NewDetector(DefaultDetectorOptions())
	var got []signal.Signal
	for i := range evs {
		got = append(got, observe(d, &evs[i])...)
	}
	const c = `container "admin-tools" (registry.example.com/ops/admin-tools:2.4) `
	want := `container.privileged 50: ` + c + `runs privileged (all capabilities, host devices, no seccomp or AppArmor)` + "\n" +
		`container.host_mount 60: ` + c + `mounts host /etc read-only at /host-etc, host /var/run/docker.sock read-write` + "\n" +
		`container.host_namespace 30: ` + c + `shares the host's network and PID namespaces` + "\n" +
		`container.dangerous_caps 40: ` + c + `adds capabilities SYS_ADMIN` + "\n"
	if r := render(got); r != want {
		t.Errorf("got\n%s\nwant\n%s", r, want)
	}
	for _, sg := range got {
		if sg.Entities[0].String() != "container:"+adminID {
			t.Errorf("entity = %v", sg.Entities)
		}
	}
}
