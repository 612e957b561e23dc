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

const webID = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"

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
		case strings.HasPrefix(r.URL.Path, "/v1.50/containers/") && strings.HasSuffix(r.URL.Path, "/json"):
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
					return
				}
			}
			if r.URL.Path == "/v1.50/containers/"+webID+"/json" {
				_, _ = w.Write(inspect)
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
