//go:build linux

package inventory

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/container"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/internal/dockertest"
)

// TestRealDockerd runs containers on a private dockerd (its own socket,
// data and exec roots, no bridge, no iptables) and checks what the
// inventory and the detector make of them.
func TestRealDockerd(t *testing.T) {
	api := dockertest.Start(t)
	sock := api.Socket
	c := container.NewClient(sock, 2*time.Second)
	defer c.Close()
	api.ImportBusybox("picket-test:1")

	s := New(Options{Socket: sock, Timeout: 5 * time.Second})
	ctx := context.Background()
	if evs, err := s.Poll(ctx, t0); err != nil || len(evs) != 0 {
		t.Fatalf("baseline: %q, %v", brief(evs), err)
	}
	det := NewDetector(DefaultDetectorOptions())

	// Host namespaces, an added capability and /etc from the host.
	toolsID := api.Container("picket-tools", map[string]any{"Image": "picket-test:1", "Cmd": []string{"sleep", "30"},
		"HostConfig": map[string]any{"Binds": []string{"/etc:/host-etc:ro"}, "NetworkMode": "host", "PidMode": "host", "CapAdd": []string{"SYS_PTRACE"}}})
	if code, out := api.Do("POST", "/containers/"+toolsID+"/start", "", nil); code != http.StatusNoContent {
		t.Fatalf("start: %d %s", code, out)
	}
	evs, err := s.Poll(ctx, t0.Add(time.Second))
	if err != nil || brief(evs) != "added picket-tools" {
		t.Fatalf("after start: %q, %v", brief(evs), err)
	}
	a := evs[0].Change.Attrs
	if a[AttrID] != toolsID || a[AttrImage] != "picket-test:1" || a[AttrPrivileged] != "false" || a[AttrCapAdd] != "SYS_PTRACE" ||
		a[AttrNetworkMode] != "host" || a[AttrPidMode] != "host" || a[AttrMounts] != "/etc:/host-etc:ro" {
		t.Errorf("attrs = %v", a)
	}
	var got []signal.Signal
	det.Observe(&evs[0], func(s signal.Signal) { got = append(got, s) })
	const l = `container "picket-tools" (picket-test:1) `
	want := `container.host_mount 60: ` + l + `mounts host /etc read-only at /host-etc` + "\n" +
		`container.host_namespace 30: ` + l + `shares the host's network and PID namespaces` + "\n" +
		`container.dangerous_caps 40: ` + l + `adds capabilities SYS_PTRACE` + "\n"
	if r := render(got); r != want {
		t.Errorf("signals:\n%s\nwant\n%s", r, want)
	}

	// Privileged. Starting it needs every capability in the daemon's
	// bounding set, which a sandbox may not grant; the flag is checked
	// on the created container either way.
	privID := api.Container("picket-priv", map[string]any{"Image": "picket-test:1", "Cmd": []string{"sleep", "30"},
		"HostConfig": map[string]any{"Privileged": true, "Binds": []string{"/etc:/host-etc:ro"}, "NetworkMode": "none"}})
	d, err := c.Details(ctx, privID)
	if err != nil || !d.Privileged || d.NetworkMode != "none" || d.Running {
		t.Fatalf("privileged details = %+v, %v", d, err)
	}
	code, out := api.Do("POST", "/containers/"+privID+"/start", "", nil)
	evs, err = s.Poll(ctx, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusNoContent {
		if brief(evs) != "added picket-priv" || evs[0].Change.Attrs[AttrPrivileged] != "true" {
			t.Fatalf("privileged: %q", brief(evs))
		}
		got = nil
		det.Observe(&evs[0], func(s signal.Signal) { got = append(got, s) })
		if r := render(got); !strings.HasPrefix(r, `container.privileged 50: container "picket-priv" (picket-test:1) runs privileged`) {
			t.Errorf("privileged signals:\n%s", r)
		}
	} else {
		t.Logf("privileged container cannot start here (%d %s); checked its flag only", code, strings.TrimSpace(string(out)))
		if len(evs) != 0 {
			t.Errorf("a container that did not start was reported: %q", brief(evs))
		}
	}

	// Removed.
	if code, out := api.Do("DELETE", "/containers/"+toolsID+"?force=1", "", nil); code != http.StatusNoContent {
		t.Fatalf("remove: %d %s", code, out)
	}
	evs, err = s.Poll(ctx, t0.Add(3*time.Second))
	if err != nil || !strings.Contains(brief(evs), "removed picket-tools") {
		t.Errorf("after remove: %q, %v", brief(evs), err)
	}
	if degraded, detail := s.Live(); degraded || !strings.Contains(detail, fmt.Sprintf("(API %s)", s.Stats().APIVersion)) {
		t.Errorf("Live = %v %q", degraded, detail)
	}
}
