package inventory

import (
	"bytes"
	"context"
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
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// hostileDaemon serves a fuzzed list and a fuzzed inspect document (with
// {{ID}} replaced by the container asked about, so the fuzzer reaches the
// paths after the id check) on a unix socket, recording the paths asked.
type hostileDaemon struct {
	socket string
	mu     sync.Mutex
	list   []byte
	doc    []byte
	paths  []string
}

func newHostileDaemon(f *testing.F) *hostileDaemon {
	d := &hostileDaemon{socket: filepath.Join(f.TempDir(), "docker.sock")}
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		f.Fatal(err)
	}
	version, err := os.ReadFile(filepath.Join("..", "testdata", "docker", "version.json"))
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.paths = append(d.paths, r.URL.Path)
		switch p := r.URL.Path; {
		case p == "/version":
			_, _ = w.Write(version)
		case p == "/v1.50/containers/json":
			_, _ = w.Write(d.list)
		case strings.HasPrefix(p, "/v1.50/containers/") && strings.HasSuffix(p, "/json"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1.50/containers/"), "/json")
			idJSON, _ := json.Marshal(id)
			_, _ = w.Write(bytes.ReplaceAll(d.doc, []byte(`"{{ID}}"`), idJSON))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	f.Cleanup(srv.Close)
	return d
}

func (d *hostileDaemon) serve(list, doc []byte) {
	d.mu.Lock()
	d.list, d.doc, d.paths = list, doc, nil
	d.mu.Unlock()
}

func (d *hostileDaemon) takePaths() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.paths
	d.paths = nil
	return p
}

// fuzzMax is the tracked-container bound of the fuzzed sensor, small so
// that the bound is exercised.
const fuzzMax = 3

// FuzzInventoryPoll polls a daemon whose list and inspect answers are
// hostile, then runs the detector on the events. Properties: no panic; only
// containers the list names are inspected, reported or flagged; no more
// than MaxContainers are tracked; a second poll of the same answers reports
// nothing (no flapping from duplicate or odd entries).
func FuzzInventoryPoll(f *testing.F) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "docker", name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	list := read("containers.json")
	for _, name := range []string{"inspect.json", "inspect-admin.json"} {
		var doc map[string]any
		if err := json.Unmarshal(read(name), &doc); err != nil {
			f.Fatal(err)
		}
		doc["Id"] = "{{ID}}"
		b, _ := json.Marshal(doc)
		f.Add(list, b)
		f.Add(list, read(name)) // the real id: right for one entry, "another container" for the other
	}
	f.Add([]byte(`[{"Id":"a"},{"Id":"a","Names":["/x"]},{"Id":""},{"Id":"../b"},{"Id":"."},{"Id":"c"},{"Id":"d"},{"Id":"e"}]`),
		[]byte(`{"Id":"{{ID}}","HostConfig":{"Privileged":true,"CapAdd":["cap_sys_admin"," ALL "],"NetworkMode":"host","PidMode":"host"},"Mounts":[{"Type":"bind","Source":"/etc/../","Destination":"/h:x,y%"}]}`))
	f.Add([]byte(`[{"Id":"a","Mounts":[null,{}]},null]`), []byte(`{"Id":"{{ID}}","State":null,"Config":null,"HostConfig":null,"Mounts":[{"Type":"volume"}]}`))
	f.Add([]byte(`{}`), []byte(`null`))

	d := newHostileDaemon(f)
	f.Fuzz(func(t *testing.T, list, doc []byte) {
		d.serve(list, doc)
		s := New(Options{Socket: d.socket, Timeout: 2 * time.Second, MaxContainers: fuzzMax})
		defer s.c.Close()
		ctx := context.Background()
		evs, err := s.Poll(ctx, t0)

		var entries []struct {
			ID string `json:"Id"`
		}
		listed := map[string]bool{}
		if json.Unmarshal(list, &entries) == nil {
			for _, e := range entries {
				listed[e.ID] = true
			}
		}
		for _, p := range d.takePaths() {
			id, ok := strings.CutPrefix(p, "/v1.50/containers/")
			if !ok || id == "json" {
				continue
			}
			if id = strings.TrimSuffix(id, "/json"); !listed[id] || id == "" {
				t.Fatalf("inspected %q, which the list does not name", id)
			}
		}
		det := NewDetector(DefaultDetectorOptions())
		for _, ev := range evs {
			checkEvent(t, ev, listed)
			det.Observe(&ev, func(sg signal.Signal) {
				for _, e := range sg.Entities {
					if e.Kind == signal.Container && !listed[e.Value] {
						t.Fatalf("signal %s on container %q, which the list does not name", sg.Rule, e.Value)
					}
				}
			})
		}
		if st := s.Stats(); st.Running > fuzzMax {
			t.Fatalf("%d containers tracked, bound %d", st.Running, fuzzMax)
		}
		if err != nil {
			return
		}
		again, err := s.Poll(ctx, t0.Add(time.Second))
		if err == nil && len(again) > 0 {
			t.Fatalf("second poll of the same answers reports %d events: %s", len(again), brief(again))
		}
	})
}

func checkEvent(t *testing.T, ev event.Event, listed map[string]bool) {
	t.Helper()
	if ev.Proc == nil || ev.Proc.Container == nil || ev.Change == nil {
		t.Fatalf("event without container or change: %+v", ev)
	}
	id := ev.Proc.Container.ID
	if !listed[id] || ev.Change.Attrs[AttrID] != id {
		t.Fatalf("event on container %q (attrs %q), which the list does not name", id, ev.Change.Attrs[AttrID])
	}
	if !slices.Contains([]string{"added", "modified", "removed"}, ev.Change.Op) {
		t.Fatalf("op %q", ev.Change.Op)
	}
	// Every bind mount with a host path in the attribute reads back, so
	// the detector sees all of them whatever the paths contain.
	if a := ev.Change.Attrs[AttrMounts]; a != "" {
		want := 0
		for e := range strings.SplitSeq(a, ",") {
			if !strings.HasPrefix(e, ":") {
				want++
			}
		}
		if got := ParseMounts(a); len(got) != want {
			t.Fatalf("mounts %q read back as %+v", a, got)
		}
	}
}
