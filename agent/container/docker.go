package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultDockerSocket is where dockerd listens unless told otherwise. Podman
// serves the same API (enough of it for Inspect) at /run/podman/podman.sock,
// or $XDG_RUNTIME_DIR/podman/podman.sock for rootless podman.
const DefaultDockerSocket = "/var/run/docker.sock"

// ErrNotFound is returned by Inspect and Details when the daemon does not
// know the container (it already went away, or it belongs to another
// runtime).
var ErrNotFound = errors.New("container not found")

// maxBody bounds what is read from the daemon: an inspect document is a few
// kilobytes; a misbehaving daemon must not make the agent allocate without
// bound.
const maxBody = 4 << 20

// Client is a minimal, read-only Docker Engine API client over the daemon's
// unix socket: what attribution needs (the API version, and a container's
// name and image) and what the inventory needs (the running containers and
// their security-relevant configuration). It only ever sends GET requests.
// Create it with NewClient; it is safe for concurrent use.
//
// It uses net/http with a dialer that ignores the URL's host and always
// connects to Socket, rather than the Docker SDK, whose dependency tree is
// larger than the whole agent.
type Client struct {
	// Socket is the daemon's unix socket path; change it only before
	// the first request.
	Socket string

	http *http.Client

	mu  sync.Mutex
	ver string // API version from GET /version, once known
}

// NewClient returns a client for the daemon at socket (DefaultDockerSocket
// when empty). timeout bounds each request, connection included (1 s when
// zero): a wedged daemon must not stall the process sensor.
func NewClient(socket string, timeout time.Duration) *Client {
	if socket == "" {
		socket = DefaultDockerSocket
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	c := &Client{Socket: socket}
	d := &net.Dialer{Timeout: timeout}
	c.http = &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", c.Socket)
			},
			// One or two connections are plenty for a local daemon;
			// keep them so a burst of new containers does not redial.
			MaxIdleConns:        2,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
	return c
}

// VersionInfo is the part of GET /version the agent uses.
type VersionInfo struct {
	Version       string `json:"Version"`
	APIVersion    string `json:"ApiVersion"`
	MinAPIVersion string `json:"MinAPIVersion"`
}

// Version asks the daemon for its version and remembers the API version so
// later requests use versioned paths: an unversioned path means "latest",
// whose response shape may change under us.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	if err := c.get(ctx, "/version", &v); err != nil {
		return VersionInfo{}, err
	}
	if !validAPIVersion(v.APIVersion) {
		return VersionInfo{}, fmt.Errorf("docker: /version: unusable ApiVersion %q", v.APIVersion)
	}
	c.mu.Lock()
	c.ver = v.APIVersion
	c.mu.Unlock()
	return v, nil
}

// Inspect returns a container's name (without the leading "/") and the
// image it was created from as the user named it (Config.Image, e.g.
// "nginx:1.27"), not the image's digest. It asks for the API version first
// if it does not know it yet. ErrNotFound when the daemon does not know id.
func (c *Client) Inspect(ctx context.Context, id string) (name, image string, err error) {
	if !validID(id) {
		return "", "", fmt.Errorf("docker: invalid container id %q", id)
	}
	ver, err := c.apiVersion(ctx)
	if err != nil {
		return "", "", err
	}
	var doc struct {
		ID     string `json:"Id"`
		Name   string `json:"Name"`
		Config *struct {
			Image string `json:"Image"`
		} `json:"Config"`
	}
	if err := c.get(ctx, "/v"+ver+"/containers/"+url.PathEscape(id)+"/json", &doc); err != nil {
		return "", "", err
	}
	name = strings.TrimPrefix(doc.Name, "/")
	if !answersFor(doc.ID, name, id) {
		return "", "", fmt.Errorf("docker: inspect %s answered for another container %q", id, doc.ID)
	}
	if doc.Config != nil {
		image = doc.Config.Image
	}
	return name, image, nil
}

// apiVersion returns the API version to put in paths, asking the daemon
// the first time only.
func (c *Client) apiVersion(ctx context.Context) (string, error) {
	c.mu.Lock()
	ver := c.ver
	c.mu.Unlock()
	if ver != "" {
		return ver, nil
	}
	v, err := c.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.APIVersion, nil
}

// get performs GET path and decodes a JSON body into out.
func (c *Client) get(ctx context.Context, path string, out any) error {
	if c.http == nil {
		return errors.New("docker: Client not made by NewClient")
	}
	// The host is a placeholder: the dialer always goes to the socket.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBody)
	switch {
	case resp.StatusCode == http.StatusNotFound && strings.Contains(path, "/containers/"):
		return ErrNotFound
	case resp.StatusCode/100 != 2:
		// The daemon explains errors as {"message": "..."}.
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(body).Decode(&e)
		return fmt.Errorf("docker: GET %s: %s: %s", path, resp.Status, e.Message)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("docker: GET %s: %w", path, err)
	}
	if n := jsonItems(data); n > maxItems {
		return fmt.Errorf("docker: GET %s: %d JSON values, more than the %d accepted", path, n, maxItems)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("docker: GET %s: %w", path, err)
	}
	return nil
}

// maxItems bounds the array elements and object members of one response.
// maxBody alone does not bound memory: "{}," is three bytes of a list but
// a 200-byte Summary once decoded, so 4 MiB of them made the agent
// allocate over a gigabyte. A real list has about 60 per container, so
// this admits some 4,000 containers (the inventory tracks 2,048).
const maxItems = 1 << 18

// jsonItems counts, as an upper bound, the values decoding data would
// create: commas and opening brackets outside strings. It allocates
// nothing, so it is safe to run on anything maxBody let through.
func jsonItems(data []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == ',' || c == '{' || c == '[':
			n++
		}
	}
	return n
}

// validID refuses container ids that would change the request path:
// empty, with "/", "?", "#" or "%", or a dot segment.
func validID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/?#%")
}

// answersFor reports whether an inspect document with docID and name
// (without "/") is about the container asked for as id (an id, an id
// prefix or a name, as the daemon resolves them). Events, and so signals
// and actions, are keyed on the id returned, and attribution names a
// process's container by it: a daemon answering about another container
// must not move them there.
func answersFor(docID, name, id string) bool {
	return docID == "" || docID == id || strings.HasPrefix(docID, id) || name == strings.TrimPrefix(id, "/")
}

// validAPIVersion accepts "1.47"-style versions only, since the value is put
// into request paths.
func validAPIVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	return ok && allDigits(major) && allDigits(minor) && len(v) <= 10
}

// Close releases idle connections.
func (c *Client) Close() {
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

// Mount is one mount of a container, as the daemon reports it in both the
// list and the inspect documents.
type Mount struct {
	// Type is "bind" (a host path), "volume", "tmpfs", "npipe",
	// "cluster" or "image".
	Type string `json:"Type"`
	// Name is the volume's name (volumes only).
	Name string `json:"Name,omitempty"`
	// Source is the host path of a bind mount, and the daemon's own
	// directory for a volume (/var/lib/docker/volumes/<name>/_data).
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Mode        string `json:"Mode,omitempty"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation,omitempty"`
}

// Summary is one entry of GET /containers/json: what the daemon tells about
// every running container in one request. It lacks the privileged flag,
// capabilities and PID mode, which only Details has.
type Summary struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"` // "/web-1", plus "/other/alias" for legacy links
	Image   string            `json:"Image"` // as the user named it, or the image id when untagged
	ImageID string            `json:"ImageID"`
	Command string            `json:"Command"`
	Created int64             `json:"Created"` // unix seconds
	State   string            `json:"State"`   // running, paused, restarting, ...
	Status  string            `json:"Status"`  // "Up 2 hours"
	Labels  map[string]string `json:"Labels"`
	// HostConfig carries only NetworkMode in the list document.
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	Mounts []Mount `json:"Mounts"`
}

// Name returns the container's own name without the leading "/": the
// first of Names with a single path element (the others are link aliases,
// "/other/alias").
func (s *Summary) Name() string {
	for _, n := range s.Names {
		n = strings.TrimPrefix(n, "/")
		if n != "" && !strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// List returns the running containers (GET /containers/json, as `docker
// ps` without -a): stopped containers run nothing and have no namespace to
// escape from, and a stop followed by a start shows as a new container,
// which is what an operator wants to hear about.
func (c *Client) List(ctx context.Context) ([]Summary, error) {
	ver, err := c.apiVersion(ctx)
	if err != nil {
		return nil, err
	}
	var out []Summary
	if err := c.get(ctx, "/v"+ver+"/containers/json", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Details is the security-relevant part of GET /containers/{id}/json.
type Details struct {
	ID      string
	Name    string // without the leading "/"
	Image   string // Config.Image: as the user named it ("nginx:1.27")
	ImageID string // the image's digest ("sha256:…")
	Created time.Time
	Running bool
	Pid     int // the container's init process on the host, 0 when not running

	Privileged  bool
	CapAdd      []string // as the daemon stores them: "CAP_SYS_ADMIN" (20.10+) or "SYS_ADMIN"
	CapDrop     []string
	NetworkMode string // "host", "bridge", "none", "container:<id>", a network name
	PidMode     string // "host", "container:<id>" or ""
	IpcMode     string
	UTSMode     string
	UsernsMode  string
	SecurityOpt []string // "seccomp=unconfined", "apparmor=unconfined", ...
	Mounts      []Mount
}

// inspectDoc is the wire shape of the fields Details keeps.
type inspectDoc struct {
	ID      string `json:"Id"`
	Name    string `json:"Name"`
	Image   string `json:"Image"`
	Created string `json:"Created"` // parsed leniently: a bad date must not lose the rest
	State   *struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
	Config *struct {
		Image string `json:"Image"`
	} `json:"Config"`
	HostConfig *struct {
		Privileged  bool     `json:"Privileged"`
		CapAdd      []string `json:"CapAdd"`
		CapDrop     []string `json:"CapDrop"`
		NetworkMode string   `json:"NetworkMode"`
		PidMode     string   `json:"PidMode"`
		IpcMode     string   `json:"IpcMode"`
		UTSMode     string   `json:"UTSMode"`
		UsernsMode  string   `json:"UsernsMode"`
		SecurityOpt []string `json:"SecurityOpt"`
	} `json:"HostConfig"`
	Mounts []Mount `json:"Mounts"`
}

// Details inspects one container (GET /containers/{id}/json). ErrNotFound
// when the daemon does not know id (it was removed since it was listed).
func (c *Client) Details(ctx context.Context, id string) (Details, error) {
	if !validID(id) {
		return Details{}, fmt.Errorf("docker: invalid container id %q", id)
	}
	ver, err := c.apiVersion(ctx)
	if err != nil {
		return Details{}, err
	}
	var doc inspectDoc
	if err := c.get(ctx, "/v"+ver+"/containers/"+url.PathEscape(id)+"/json", &doc); err != nil {
		return Details{}, err
	}
	d := Details{ID: doc.ID, Name: strings.TrimPrefix(doc.Name, "/"), ImageID: doc.Image, Mounts: doc.Mounts}
	if !answersFor(d.ID, d.Name, id) {
		return Details{}, fmt.Errorf("docker: inspect %s answered for another container %q", id, d.ID)
	}
	d.Created, _ = time.Parse(time.RFC3339Nano, doc.Created)
	if d.ID == "" {
		d.ID = id
	}
	if doc.State != nil {
		d.Running, d.Pid = doc.State.Running, doc.State.Pid
	}
	if doc.Config != nil {
		d.Image = doc.Config.Image
	}
	if h := doc.HostConfig; h != nil {
		d.Privileged, d.CapAdd, d.CapDrop = h.Privileged, h.CapAdd, h.CapDrop
		d.NetworkMode, d.PidMode, d.IpcMode, d.UTSMode, d.UsernsMode = h.NetworkMode, h.PidMode, h.IpcMode, h.UTSMode, h.UsernsMode
		d.SecurityOpt = h.SecurityOpt
	}
	return d, nil
}
