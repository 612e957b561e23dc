package container

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzDaemon is an http.RoundTripper answering like dockerd from fixed
// bodies, in memory, recording what is asked and how much of each body the
// client read.
type fuzzDaemon struct {
	version, list, inspect []byte
	status                 int // of the list and inspect answers
	reqs                   []*http.Request
	read                   int64
}

type countingBody struct {
	r io.Reader
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	*b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return nil }

func (d *fuzzDaemon) RoundTrip(r *http.Request) (*http.Response, error) {
	d.reqs = append(d.reqs, r)
	body, status := d.version, http.StatusOK
	switch {
	case r.URL.Path == "/version":
	case strings.HasSuffix(r.URL.Path, "/containers/json"):
		body, status = d.list, d.status
	default:
		body, status = d.inspect, d.status
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{},
		Body: &countingBody{r: bytes.NewReader(body), n: &d.read}, Request: r}, nil
}

func fuzzClient(d *fuzzDaemon) *Client {
	c := NewClient("/nonexistent/docker.sock", time.Second)
	c.http = &http.Client{Transport: d}
	return c
}

func readDockerFile(tb testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "docker", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzDockerClient feeds hostile /version, list and inspect answers to the
// read-only client. Properties: no panic; only GET requests, only to
// /version and the versioned paths of the container asked about (the API
// version from the answer never changes the path's shape); nothing read
// past maxBody; what Details and List return is what the JSON says, and
// Details never names another container than the one asked about.
func FuzzDockerClient(f *testing.F) {
	version := readDockerFile(f, "version.json")
	list := readDockerFile(f, "containers.json")
	for _, in := range []string{"inspect.json", "inspect-admin.json", "notfound.json"} {
		f.Add(version, list, readDockerFile(f, in), uint16(200))
	}
	f.Add(version, list, readDockerFile(f, "notfound.json"), uint16(404))
	f.Add([]byte(`{"ApiVersion":"1.50/../../x"}`), list, []byte(`{}`), uint16(200))
	f.Add([]byte(`{"ApiVersion":"1.50?x=1"}`), []byte(`[{"Id":"a/../b"}]`), []byte(`{"Id":"other"}`), uint16(200))
	f.Add(version, []byte(`[{},{},null,{"Names":null,"Mounts":[null,{}]}]`), []byte(`{"State":null,"Config":null,"HostConfig":null,"Mounts":[{}]}`), uint16(200))
	f.Add(version, []byte(`[`+strings.Repeat(`[`, 20000)), []byte(`{"Id":"`+strings.Repeat(`\u0000`, 100)+`"}`), uint16(500))
	f.Add(version, []byte(`{"message":"x"}`), []byte(`{"Id":"5f1c","Name":"/web"}`), uint16(200))

	const id = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"
	f.Fuzz(func(t *testing.T, version, list, inspect []byte, status uint16) {
		st := int(status)
		if st < 100 || st > 599 {
			st = 200
		}
		d := &fuzzDaemon{version: version, list: list, inspect: inspect, status: st}
		c := fuzzClient(d)
		ctx := context.Background()

		v, verr := c.Version(ctx)
		if verr == nil && !validAPIVersion(v.APIVersion) {
			t.Fatalf("unusable API version %q accepted", v.APIVersion)
		}
		summaries, lerr := c.List(ctx)
		det, derr := c.Details(ctx, id)
		name, image, ierr := c.Inspect(ctx, id)

		for _, r := range d.reqs {
			if r.Method != http.MethodGet {
				t.Fatalf("%s %s from the read-only client", r.Method, r.URL)
			}
			if r.URL.RawQuery != "" || r.URL.Fragment != "" {
				t.Fatalf("request %q has a query or fragment", r.URL)
			}
			p := r.URL.Path
			if p == "/version" {
				continue
			}
			ver, rest, _ := strings.Cut(strings.TrimPrefix(p, "/v"), "/")
			if !strings.HasPrefix(p, "/v") || !validAPIVersion(ver) || ver != v.APIVersion {
				t.Fatalf("request %q is not versioned by the daemon's answer %q", p, v.APIVersion)
			}
			if rest != "containers/json" && rest != "containers/"+id+"/json" {
				t.Fatalf("request %q asks for something else than the list or %s", p, id)
			}
		}
		if max := int64(len(d.reqs)) * maxBody; d.read > max {
			t.Fatalf("read %d bytes in %d answers, more than maxBody each", d.read, len(d.reqs))
		}
		if verr != nil && (lerr == nil || derr == nil || ierr == nil) {
			t.Fatalf("requests succeeded without an API version: %v %v %v", lerr, derr, ierr)
		}

		if lerr == nil {
			var raw []map[string]json.RawMessage
			if err := json.Unmarshal(list, &raw); err != nil {
				t.Fatalf("list accepted that does not decode: %v", err)
			}
			if len(raw) != len(summaries) {
				t.Fatalf("list of %d entries returned %d", len(raw), len(summaries))
			}
			for i, s := range summaries {
				var want struct {
					ID string `json:"Id"`
				}
				_ = json.Unmarshal(mustJSON(t, raw[i]), &want)
				if s.ID != want.ID {
					t.Fatalf("entry %d: id %q, the JSON says %q", i, s.ID, want.ID)
				}
				if n := s.Name(); strings.Contains(n, "/") {
					t.Fatalf("entry %d: name %q", i, n)
				}
			}
		}
		if derr == nil {
			if det.ID != id && !strings.HasPrefix(det.ID, id) && det.Name != id {
				t.Fatalf("asked for %s, Details names %q (%q)", id, det.ID, det.Name)
			}
		}
		if ierr == nil {
			var want struct {
				Name   string
				Config *struct{ Image string }
			}
			if err := json.Unmarshal(inspect, &want); err != nil {
				t.Fatalf("inspect accepted that does not decode: %v", err)
			}
			if name != strings.TrimPrefix(want.Name, "/") || want.Config != nil && image != want.Config.Image {
				t.Fatalf("Inspect says %q %q, the JSON %+v", name, image, want)
			}
		}
	})
}

func mustJSON(t *testing.T, fields map[string]json.RawMessage) []byte {
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A list whose entries are tiny but many is refused before decoding: 4 MiB
// of "{}," would decode to over a gigabyte of Summaries.
func TestListTooManyValues(t *testing.T) {
	body := "[" + strings.Repeat("{},", maxBody/3-1) + "{}]"
	d := &fuzzDaemon{version: readDockerFile(t, "version.json"), list: []byte(body[:maxBody]), status: 200}
	if _, err := fuzzClient(d).List(context.Background()); err == nil || !strings.Contains(err.Error(), "JSON values") {
		t.Fatalf("got %v", err)
	}
	// Commas and brackets inside strings are not values.
	if n := jsonItems([]byte(`{"a":"x,{[\",y","b":[1,2]}`)); n != 4 {
		t.Fatalf("jsonItems = %d, want 4", n)
	}
}

// An answer larger than maxBody is cut there, not read to its end.
func TestAnswerBounded(t *testing.T) {
	d := &fuzzDaemon{version: readDockerFile(t, "version.json"), status: 200,
		list: append([]byte(`[{"Id":"`), bytes.Repeat([]byte("a"), 2*maxBody)...)}
	if _, err := fuzzClient(d).List(context.Background()); err == nil {
		t.Fatal("truncated list accepted")
	}
	if d.read > int64(len(d.version))+maxBody {
		t.Fatalf("read %d bytes", d.read)
	}
}

// Details refuses an answer about another container: the inventory would
// put that container's id on the event, and a signal and an action on it.
func TestDetailsOtherContainer(t *testing.T) {
	const asked = "ade4c0898f98e6c7b86a5b278d85baf26c039d4f624ae1409d18381c41234806"
	d := &fuzzDaemon{version: readDockerFile(t, "version.json"), status: 200, inspect: readDockerFile(t, "inspect-admin.json")}
	if _, err := fuzzClient(d).Details(context.Background(), asked); err == nil || !strings.Contains(err.Error(), "another container") {
		t.Fatalf("got %v", err)
	}
	d.inspect = readDockerFile(t, "inspect.json")
	got, err := fuzzClient(d).Details(context.Background(), asked[:12])
	if err != nil || got.ID != asked {
		t.Fatalf("by prefix: %+v, %v", got, err)
	}
}
