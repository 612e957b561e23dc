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

// ErrNotFound is returned by Inspect when the daemon does not know the
// container (it already went away, or it belongs to another runtime).
var ErrNotFound = errors.New("container not found")

// maxBody bounds what is read from the daemon: an inspect document is a few
// kilobytes; a misbehaving daemon must not make the agent allocate without
// bound.
const maxBody = 4 << 20

// Client is a minimal Docker Engine API client over the daemon's unix
// socket: only what attribution needs (the API version, and a container's
// name and image). Create it with NewClient; it is safe for concurrent use.
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
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return "", "", fmt.Errorf("docker: invalid container id %q", id)
	}
	c.mu.Lock()
	ver := c.ver
	c.mu.Unlock()
	if ver == "" {
		v, err := c.Version(ctx)
		if err != nil {
			return "", "", err
		}
		ver = v.APIVersion
	}
	var doc struct {
		Name   string `json:"Name"`
		Config *struct {
			Image string `json:"Image"`
		} `json:"Config"`
	}
	if err := c.get(ctx, "/v"+ver+"/containers/"+url.PathEscape(id)+"/json", &doc); err != nil {
		return "", "", err
	}
	name = strings.TrimPrefix(doc.Name, "/")
	if doc.Config != nil {
		image = doc.Config.Image
	}
	return name, image, nil
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
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return fmt.Errorf("docker: GET %s: %w", path, err)
	}
	// Drain what is left (bounded) so the connection can be reused.
	_, _ = io.Copy(io.Discard, body)
	return nil
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
