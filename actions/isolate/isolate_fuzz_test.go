package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzDaemon answers like dockerd from a fixed inspect document, in memory,
// and records every request with its JSON body.
type fuzzDaemon struct {
	inspect []byte
	fail    string // message of a 500 answer to every POST; "" answers 204
	reqs    []fuzzReq
}

type fuzzReq struct {
	method, path, raw string
	body              map[string]any
}

func (d *fuzzDaemon) RoundTrip(r *http.Request) (*http.Response, error) {
	q := fuzzReq{method: r.Method, path: r.URL.Path, raw: r.URL.RequestURI()}
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &q.body)
	}
	d.reqs = append(d.reqs, q)
	status, body := http.StatusOK, []byte(`{"ApiVersion":"1.47"}`)
	switch {
	case q.path == "/version":
	case r.Method == http.MethodGet:
		body = d.inspect
	case d.fail != "":
		status, body = http.StatusInternalServerError, []byte(`{"message":`+strconvQuote(d.fail)+`}`)
	default:
		status, body = http.StatusNoContent, nil
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func fuzzClient(d *fuzzDaemon) *Client {
	c := NewClient("/nonexistent/docker.sock", time.Second)
	c.http = &http.Client{Transport: d}
	return c
}

const fuzzID = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"

const fuzzInspect = `{"Id":"` + fuzzID + `","Name":"/web-1",
 "State":{"Running":true,"Paused":false},
 "HostConfig":{"NetworkMode":"front"},
 "NetworkSettings":{"Networks":{
  "front":{"IPAMConfig":{"IPv4Address":"198.18.70.10"},"Aliases":["web","www"],"NetworkID":"9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9","IPAddress":"198.18.70.10"},
  "back":{"NetworkID":"","Links":["db:db"],"DriverOpts":{"x":"y"}},
  "none":{}}}}`

// fuzzView is the part of the inspect document the properties need,
// decoded independently of the code under test.
type fuzzView struct {
	ID              string `json:"Id"`
	Name            string
	NetworkSettings struct {
		Networks map[string]*struct{ NetworkID string }
	}
}

// FuzzIsolate isolates and restores a container whose inspect document is
// hostile. Properties: no panic; every request goes to the versioned path
// of the container the document names (pause/unpause) or of a network it
// lists (disconnect/connect), as one plain path segment, with that
// container in the body; nothing is changed for a protected container or
// one sharing another network namespace; the snapshot holds only networks
// of the document, and restoring it only reconnects those.
func FuzzIsolate(f *testing.F) {
	f.Add([]byte(fuzzInspect), "web-1", false, false, "")
	f.Add([]byte(fuzzInspect), fuzzID[:12], true, false, "")
	f.Add([]byte(fuzzInspect), "web-1", false, true, "is not connected")
	f.Add([]byte(strings.Replace(fuzzInspect, `"front"}`, `"host"}`, 1)), "web-1", false, false, "")
	f.Add([]byte(strings.Replace(fuzzInspect, `"Paused":false`, `"Paused":true`, 1)), "web-1", true, false, "")
	f.Add([]byte(strings.Replace(fuzzInspect, fuzzID, "../../networks/x", 1)), "web-1", true, false, "")
	f.Add([]byte(strings.Replace(fuzzInspect, fuzzID, "", 1)), "web-1", false, false, "")
	f.Add([]byte(strings.Replace(fuzzInspect, `"back"`, `".."`, 1)), "web-1", false, false, "")
	f.Add([]byte(strings.Replace(fuzzInspect, `"back"`, `"a/b?c#d"`, 1)), "web-1", false, false, "")
	f.Add([]byte(`{"Id":"`+fuzzID+`","NetworkSettings":{"Networks":{"":{"NetworkID":"%2e%2e"}}}}`), fuzzID, false, false, "")
	f.Add([]byte(`{"Id":"ffff","Name":"/other"}`), "web-1", true, false, "")
	f.Add([]byte(`null`), "web-1", false, false, "")

	f.Fuzz(func(t *testing.T, doc []byte, asked string, pause, protect bool, fail string) {
		d := &fuzzDaemon{inspect: doc, fail: fail}
		c := fuzzClient(d)
		how := Disconnect
		if pause {
			how = Pause
		}
		var guard []string
		if protect {
			guard = []string{"web-1", fuzzID[:12]}
		}
		snap, err := c.Isolate(context.Background(), asked, how, guard)

		var view fuzzView
		jerr := json.Unmarshal(doc, &view)
		name := strings.TrimPrefix(view.Name, "/")
		changes := d.posts()
		if len(changes) > 0 && (jerr != nil || !validID(view.ID)) {
			t.Fatalf("changed something (%v) on a document that names no container: %q", changes, doc)
		}
		if len(changes) > 0 && view.ID != asked && !strings.HasPrefix(view.ID, asked) && name != strings.TrimPrefix(asked, "/") {
			t.Fatalf("asked for %q, changed container %q (%q)", asked, view.ID, name)
		}
		if protect && (name == "web-1" || strings.HasPrefix(view.ID, fuzzID[:12])) {
			if len(changes) > 0 || err == nil {
				t.Fatalf("protected container changed (%v) or not refused (%v)", changes, err)
			}
		}
		d.checkRequests(t, view, snap)
		if err == nil && snap.ContainerID != view.ID {
			t.Fatalf("snapshot of %q for a document about %q", snap.ContainerID, view.ID)
		}
		for _, ep := range snap.Endpoints {
			n := view.NetworkSettings.Networks[ep.NetworkName]
			if n == nil || n.NetworkID != ep.NetworkID || ep.NetworkName == "none" {
				t.Fatalf("snapshot endpoint %+v not in the document", ep)
			}
		}
		if snap.ContainerID == "" {
			return
		}

		// Restore what was saved, against the same document.
		d.reqs = nil
		_ = c.Restore(context.Background(), snap)
		d.checkRequests(t, view, snap)
	})
}

// posts returns the changing requests.
func (d *fuzzDaemon) posts() []string {
	var out []string
	for _, r := range d.reqs {
		if r.method != http.MethodGet {
			out = append(out, r.method+" "+r.raw)
		}
	}
	return out
}

// checkRequests asserts every request names the document's container, or
// a network of the document (or of the snapshot, on restore), as one plain
// segment of a versioned path.
func (d *fuzzDaemon) checkRequests(t *testing.T, view fuzzView, snap Snapshot) {
	t.Helper()
	for _, r := range d.reqs {
		if strings.ContainsAny(r.raw, "?#") {
			t.Fatalf("request %q has a query or fragment", r.raw)
		}
		if r.path == "/version" {
			continue
		}
		seg := strings.Split(strings.TrimPrefix(r.path, "/v1.47/"), "/")
		if !strings.HasPrefix(r.path, "/v1.47/") || len(seg) != 3 || slices.Contains(seg, "..") || slices.Contains(seg, ".") || seg[1] == "" {
			t.Fatalf("request path %q (%q) is not one plain segment", r.path, r.raw)
		}
		if r.method == http.MethodGet {
			if seg[0] != "containers" || seg[2] != "json" {
				t.Fatalf("GET %q", r.path)
			}
			continue
		}
		switch {
		case seg[0] == "containers" && (seg[2] == "pause" || seg[2] == "unpause"):
			if seg[1] != view.ID {
				t.Fatalf("%s %q for a document about %q", r.method, r.path, view.ID)
			}
		case seg[0] == "networks" && (seg[2] == "disconnect" || seg[2] == "connect"):
			if r.body["Container"] != view.ID {
				t.Fatalf("%s body %v for a document about %q", r.path, r.body, view.ID)
			}
			ok := false
			for n, e := range view.NetworkSettings.Networks {
				ok = ok || n == seg[1] || e != nil && e.NetworkID == seg[1]
			}
			for _, ep := range snap.Endpoints {
				ok = ok || seg[2] == "connect" && (ep.NetworkName == seg[1] || ep.NetworkID == seg[1])
			}
			if !ok || seg[1] == "none" {
				t.Fatalf("%s %q: network not in the document", r.method, r.path)
			}
		default:
			t.Fatalf("unexpected %s %q", r.method, r.path)
		}
	}
}

// The fuzzer's findings: an inspect document whose Id is empty or a path
// ("../../networks/x") made Isolate post to /containers//pause or to
// another endpoint, and a network named ".." made disconnect post to
// /v1.47/disconnect.
func TestIsolateHostileIDs(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want error
	}{
		{strings.Replace(fuzzInspect, fuzzID, "", 1), ErrInvalid},
		{strings.Replace(fuzzInspect, fuzzID, "../../networks/x", 1), ErrInvalid},
		{strings.Replace(fuzzInspect, fuzzID, "ffff", 1), ErrInvalid}, // another container
		{strings.Replace(fuzzInspect, `"back"`, `".."`, 1), ErrInvalid},
	} {
		d := &fuzzDaemon{inspect: []byte(tc.doc)}
		how := Pause
		if strings.Contains(tc.doc, `".."`) {
			how = Disconnect
		}
		_, err := fuzzClient(d).Isolate(context.Background(), fuzzID, how, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%.60s: got %v", tc.doc, err)
		}
		for _, p := range d.posts() {
			if !strings.HasPrefix(p, "POST /v1.47/networks/9a1b") && !strings.HasPrefix(p, "POST /v1.47/networks/back") {
				t.Errorf("%.60s: %s", tc.doc, p)
			}
		}
	}
}
