package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultSocket is where dockerd listens unless told otherwise.
const DefaultSocket = "/var/run/docker.sock"

// maxBody bounds what is read from the daemon.
const maxBody = 4 << 20

// Client is a small Docker Engine API client over the daemon's unix socket
// that can change things: inspect, pause/unpause, network
// connect/disconnect. (agent/container.Client is the agent's read-only
// client and only ever sends GET.) It uses the API version the daemon
// reports in GET /version, asked once. Safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client

	mu  sync.Mutex
	ver string
}

// NewClient returns a client for the daemon at socket (DefaultSocket when
// empty); timeout bounds each request (10 s when zero).
func NewClient(socket string, timeout time.Duration) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &net.Dialer{Timeout: timeout}
	return &Client{socket: socket, http: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			MaxIdleConns:       1,
			IdleConnTimeout:    30 * time.Second,
			DisableCompression: true,
		},
	}}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// apiError is a non-2xx answer; the daemon explains it in {"message": …}.
type apiError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("docker: %s %s: %d: %s", e.Method, e.Path, e.Status, e.Message)
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// APIVersion returns the daemon's API version, asking GET /version the
// first time: unversioned paths mean "latest", whose shapes may change.
func (c *Client) APIVersion(ctx context.Context) (string, error) {
	c.mu.Lock()
	v := c.ver
	c.mu.Unlock()
	if v != "" {
		return v, nil
	}
	var doc struct {
		APIVersion string `json:"ApiVersion"`
	}
	if err := c.do(ctx, http.MethodGet, "/version", nil, &doc); err != nil {
		return "", err
	}
	if !validVersion(doc.APIVersion) {
		return "", fmt.Errorf("docker: /version: unusable ApiVersion %q", doc.APIVersion)
	}
	c.mu.Lock()
	c.ver = doc.APIVersion
	c.mu.Unlock()
	return doc.APIVersion, nil
}

func validVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	return ok && digits(major) && digits(minor) && len(v) <= 10
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// call sends a versioned request.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return err
	}
	return c.do(ctx, method, "/v"+v+path, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("docker: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	// The host is a placeholder: the dialer always goes to the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("docker: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	r := io.LimitReader(resp.Body, maxBody)
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(r).Decode(&e)
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Message: e.Message}
	}
	if out != nil {
		if err := json.NewDecoder(r).Decode(out); err != nil {
			return fmt.Errorf("docker: %s %s: %w", method, path, err)
		}
	}
	_, _ = io.Copy(io.Discard, r)
	return nil
}
