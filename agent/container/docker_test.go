package container

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	webID   = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"
	adminID = "5f1c3e9b7a2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
)

// fakeDaemon serves the recorded dockerd responses in testdata/docker on a
// unix socket, as dockerd does, and records the paths asked for.
type fakeDaemon struct {
	socket string
	srv    *httptest.Server

	mu    sync.Mutex
	paths []string
	delay time.Duration // before answering containers/…/json
	fail  bool          // answer 500 to everything
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "docker", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	version, inspect, notFound := read("version.json"), read("inspect.json"), read("notfound.json")
	list, inspectAdmin := read("containers.json"), read("inspect-admin.json")

	d := &fakeDaemon{socket: filepath.Join(t.TempDir(), "docker.sock")}
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.paths = append(d.paths, r.URL.Path)
		delay, fail := d.delay, d.fail
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Api-Version", "1.50")
		switch {
		case fail:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
		case r.Method != http.MethodGet:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case r.URL.Path == "/version" || r.URL.Path == "/v1.50/version":
			_, _ = w.Write(version)
		case r.URL.Path == "/v1.50/containers/json":
			_, _ = w.Write(list)
		case strings.HasPrefix(r.URL.Path, "/v1.50/containers/") && strings.HasSuffix(r.URL.Path, "/json"):
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
			switch r.URL.Path {
			case "/v1.50/containers/" + webID + "/json":
				_, _ = w.Write(inspect)
				return
			case "/v1.50/containers/" + adminID + "/json":
				_, _ = w.Write(inspectAdmin)
				return
			}
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(notFound)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"page not found"}`))
		}
	}))
	d.srv.Listener.Close()
	d.srv.Listener = l
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	return d
}

func (d *fakeDaemon) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.paths...)
}

func (d *fakeDaemon) set(f func(d *fakeDaemon)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func TestClientVersion(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.socket, time.Second)
	defer c.Close()
	v, err := c.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.APIVersion != "1.50" || v.Version != "28.2.2" || v.MinAPIVersion != "1.24" {
		t.Errorf("Version = %+v", v)
	}
}

func TestClientInspect(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.socket, time.Second)
	defer c.Close()
	ctx := context.Background()
	name, image, err := c.Inspect(ctx, webID)
	if err != nil {
		t.Fatal(err)
	}
	if name != "web-1" || image != "nginx:1.27" {
		t.Errorf("Inspect = %q %q, want web-1 nginx:1.27", name, image)
	}
	// The API version is asked once, then used in every path.
	if _, _, err := c.Inspect(ctx, webID); err != nil {
		t.Fatal(err)
	}
	want := []string{"/version", "/v1.50/containers/" + webID + "/json", "/v1.50/containers/" + webID + "/json"}
	if got := d.requests(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests = %v, want %v", got, want)
	}

	other := strings.Repeat("0", 64)
	if _, _, err := c.Inspect(ctx, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown container: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "../../version", "a/b", "x?all=1"} {
		if _, _, err := c.Inspect(ctx, bad); err == nil {
			t.Errorf("Inspect(%q) accepted", bad)
		}
	}
}

func TestClientList(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.socket, time.Second)
	defer c.Close()
	list, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %d containers, want 2", len(list))
	}
	a, w := list[0], list[1]
	if a.ID != adminID || a.Name() != "admin-tools" || a.Image != "registry.example.com/ops/admin-tools:2.4" ||
		a.State != "running" || a.HostConfig.NetworkMode != "host" || a.Created != 1749722564 {
		t.Errorf("admin summary = %+v", a)
	}
	if len(a.Mounts) != 5 || a.Mounts[0] != (Mount{Type: "bind", Source: "/etc", Destination: "/host-etc", Mode: "ro", Propagation: "rprivate"}) ||
		a.Mounts[4].Type != "volume" || a.Mounts[4].Name != "tools-cache" || !a.Mounts[4].RW {
		t.Errorf("admin mounts = %+v", a.Mounts)
	}
	if w.ID != webID || w.Name() != "web-1" || w.HostConfig.NetworkMode != "bridge" || len(w.Mounts) != 0 {
		t.Errorf("web summary = %+v", w)
	}
	want := []string{"/version", "/v1.50/containers/json"}
	if got := d.requests(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests = %v, want %v", got, want)
	}
}

func TestSummaryName(t *testing.T) {
	for names, want := range map[string]string{"/web-1": "web-1", "/app/db,/db": "db", "": "", "/a/b": ""} {
		s := Summary{Names: strings.Split(names, ",")}
		if got := s.Name(); got != want {
			t.Errorf("Name(%q) = %q, want %q", names, got, want)
		}
	}
}

func TestClientDetails(t *testing.T) {
	d := newFakeDaemon(t)
	c := NewClient(d.socket, time.Second)
	defer c.Close()
	ctx := context.Background()
	a, err := c.Details(ctx, adminID)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != adminID || a.Name != "admin-tools" || a.Image != "registry.example.com/ops/admin-tools:2.4" ||
		a.ImageID != "sha256:6d3e4188a38af91b0c1577b9e88c53368926b2fe0e1fb985d6e8a70040520c4d" ||
		!a.Running || a.Pid != 52817 || !a.Privileged || a.NetworkMode != "host" || a.PidMode != "host" ||
		a.IpcMode != "private" || strings.Join(a.CapAdd, ",") != "CAP_SYS_ADMIN,CAP_NET_RAW" ||
		strings.Join(a.SecurityOpt, ",") != "label=disable" || len(a.Mounts) != 5 ||
		!a.Created.Equal(time.Date(2025, 6, 12, 10, 2, 44, 118203551, time.UTC)) {
		t.Errorf("admin details = %+v", a)
	}
	w, err := c.Details(ctx, webID)
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "web-1" || w.Image != "nginx:1.27" || w.Privileged || w.NetworkMode != "bridge" || w.PidMode != "" ||
		len(w.CapAdd) != 0 || len(w.Mounts) != 0 {
		t.Errorf("web details = %+v", w)
	}
	if _, err := c.Details(ctx, strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown container: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Details(ctx, "../version"); err == nil {
		t.Error("Details accepted a path as id")
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()

	// No daemon: a prompt error, not a hang.
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"), time.Second)
	start := time.Now()
	if _, _, err := c.Inspect(ctx, webID); err == nil {
		t.Error("Inspect without a daemon succeeded")
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("failing to connect took %v", el)
	}

	// A daemon answering 500 carries its message.
	d := newFakeDaemon(t)
	d.set(func(d *fakeDaemon) { d.fail = true })
	c = NewClient(d.socket, time.Second)
	defer c.Close()
	if _, err := c.Version(ctx); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("500: err = %v, want the daemon's message", err)
	}

	// A wedged daemon: the request ends at the timeout.
	d.set(func(d *fakeDaemon) { d.fail, d.delay = false, 5*time.Second })
	c = NewClient(d.socket, 200*time.Millisecond)
	defer c.Close()
	start = time.Now()
	if _, _, err := c.Inspect(ctx, webID); err == nil {
		t.Error("wedged daemon: Inspect succeeded")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("wedged daemon: Inspect took %v, want about the 200ms timeout", el)
	}
}

func TestValidAPIVersion(t *testing.T) {
	for v, want := range map[string]bool{"1.50": true, "1.24": true, "": false, "1": false,
		"1.50/../x": false, "v1.50": false, "1.5a": false} {
		if got := validAPIVersion(v); got != want {
			t.Errorf("validAPIVersion(%q) = %v", v, got)
		}
	}
}
