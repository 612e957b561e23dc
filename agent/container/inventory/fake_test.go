package inventory

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	webID   = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"
	adminID = "5f1c3e9b7a2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
)

// fakeDaemon is a dockerd stand-in on a unix socket that answers like
// Docker 28 (API 1.50) from inspect documents recorded in
// agent/container/testdata/docker, which tests add, change and remove
// between polls. The list is derived from the inspect documents the way
// dockerd derives it, so the two never disagree unless a test says so.
type fakeDaemon struct {
	socket string
	srv    *httptest.Server

	mu         sync.Mutex
	containers map[string]map[string]any // id → inspect document
	paths      []string
	failList   bool            // answer 500 to the list
	hidden     map[string]bool // listed, but inspect says 404 (removed in between)
	broken     map[string]bool // inspect answers 500
}

func readDoc(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "docker", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// newFakeDaemon serves on socket (a fresh path when empty).
func newFakeDaemon(t *testing.T, socket string) *fakeDaemon {
	t.Helper()
	if socket == "" {
		socket = filepath.Join(t.TempDir(), "docker.sock")
	}
	version, err := os.ReadFile(filepath.Join("..", "testdata", "docker", "version.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{socket: socket, containers: map[string]map[string]any{}, hidden: map[string]bool{}, broken: map[string]bool{}}
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.paths = append(d.paths, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Api-Version", "1.50")
		switch p := r.URL.Path; {
		case r.Method != http.MethodGet:
			w.WriteHeader(http.StatusMethodNotAllowed)
		case p == "/version":
			_, _ = w.Write(version)
		case p == "/v1.50/containers/json" && d.failList:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
		case p == "/v1.50/containers/json":
			_ = json.NewEncoder(w).Encode(d.listLocked())
		case strings.HasPrefix(p, "/v1.50/containers/") && strings.HasSuffix(p, "/json"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1.50/containers/"), "/json")
			if d.broken[id] {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"message":"inspect failed"}`))
				return
			}
			if doc, ok := d.containers[id]; ok && !d.hidden[id] {
				_ = json.NewEncoder(w).Encode(doc)
				return
			}
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: ` + id + `"}`))
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

// listLocked builds GET /containers/json the way dockerd does: one
// summary per running container, newest first.
func (d *fakeDaemon) listLocked() []map[string]any {
	var out []map[string]any
	for id, doc := range d.containers {
		cfg := doc["Config"].(map[string]any)
		hc := doc["HostConfig"].(map[string]any)
		mounts := doc["Mounts"]
		if mounts == nil {
			mounts = []any{}
		}
		out = append(out, map[string]any{
			"Id": id, "Names": []string{doc["Name"].(string)}, "Image": cfg["Image"], "ImageID": doc["Image"],
			"Command": "/docker-entrypoint.sh", "Created": 1749721267, "Ports": []any{}, "Labels": cfg["Labels"],
			"State": "running", "Status": "Up 5 minutes",
			"HostConfig":      map[string]any{"NetworkMode": hc["NetworkMode"]},
			"NetworkSettings": map[string]any{"Networks": map[string]any{}},
			"Mounts":          mounts,
		})
	}
	slices.SortFunc(out, func(a, b map[string]any) int { return strings.Compare(b["Id"].(string), a["Id"].(string)) })
	return out
}

func (d *fakeDaemon) set(f func(d *fakeDaemon)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// add runs a container from a recorded inspect document.
func (d *fakeDaemon) add(t testing.TB, file string) {
	doc := readDoc(t, file)
	d.set(func(d *fakeDaemon) { d.containers[doc["Id"].(string)] = doc })
}

// takeRequests returns the paths asked for since the last call.
func (d *fakeDaemon) takeRequests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.paths
	d.paths = nil
	return p
}
