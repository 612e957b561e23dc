// Package control is the agent's local control socket: a root-only unix
// socket in the state directory over which the CLI sends the running agent
// one small JSON request per connection and reads one JSON response
// (`picket feedback` uses it). The agent runs Serve as a worker; the CLI
// calls Call. A request the agent cannot take (no agent, a full queue) is
// the caller's to store for the agent's next start.
//
// Robustness: requests are bounded in size (MaxRequest), every connection
// has a deadline, at most MaxConns are served at once (more are refused
// at once, never queued), a handler runs under a timeout, and only root or
// the agent's own user may connect (SO_PEERCRED) besides the socket's
// 0600 mode. One bad client can cost one connection slot for at most the
// read deadline.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SocketName is the socket's file name inside the state directory.
const SocketName = "control.sock"

// Limits.
const (
	MaxRequest     = 64 << 10
	MaxResponse    = 1 << 20
	MaxConns       = 8
	ReadTimeout    = 5 * time.Second
	HandlerTimeout = 30 * time.Second
)

// Errors.
var (
	// ErrNoAgent: nothing listens on the socket.
	ErrNoAgent = errors.New("control: no agent is listening")
	// ErrPeer: the connecting process is neither root nor the agent's user.
	ErrPeer = errors.New("control: peer not allowed")
)

// Request is one command to the agent.
type Request struct {
	Op   string          `json:"op"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Response is the agent's answer.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Peer is the process at the other end, from SO_PEERCRED.
type Peer struct {
	PID, UID, GID int
}

// Handler answers one request.
type Handler func(ctx context.Context, req Request, peer Peer) Response

// Server is a listening control socket.
type Server struct {
	ln   *net.UnixListener
	path string
	log  *slog.Logger
	// allowed decides who may connect; nil allows root and our own uid.
	allowed func(Peer) bool
}

// Path is the socket path for a state directory.
func Path(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// Listen creates the socket at path, mode 0600. A stale socket file (no
// listener behind it) is replaced; a live one is an error, so two agents
// never share a state directory's socket.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s: another agent is listening", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: remove stale %s: %w", path, err)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	return &Server{ln: ln, path: path, log: log.With(slog.String("subsystem", "control"))}, nil
}

// Serve answers connections until ctx ends, then closes the socket.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.ln.Close()
	slots := make(chan struct{}, MaxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			// Refuse rather than queue: a flood must not hold the agent.
			go refuse(c, Response{Error: "busy: too many control connections"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.serveConn(ctx, c, h)
		}()
	}
}

func (s *Server) allow(p Peer) bool {
	if s.allowed != nil {
		return s.allowed(p)
	}
	return p.UID == 0 || p.UID == os.Geteuid()
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn, h Handler) {
	defer c.Close()
	defer func() {
		// A handler bug must not take the agent down with it.
		if r := recover(); r != nil {
			s.log.Error("control handler panicked", "panic", r)
			writeResponse(c, Response{Error: "internal error"})
		}
	}()
	c.SetDeadline(time.Now().Add(ReadTimeout))
	peer, err := peerCred(c)
	if err != nil || !s.allow(peer) {
		s.log.Warn("control connection refused", "uid", peer.UID, "pid", peer.PID, "err", err)
		refuse(c, Response{Error: ErrPeer.Error()})
		return
	}
	req, err := readRequest(c)
	if err != nil {
		writeResponse(c, Response{Error: err.Error()})
		return
	}
	hctx, cancel := context.WithTimeout(ctx, HandlerTimeout)
	defer cancel()
	resp := h(hctx, req, peer)
	c.SetDeadline(time.Now().Add(ReadTimeout))
	writeResponse(c, resp)
}

// readRequest reads one JSON line of at most MaxRequest bytes.
func readRequest(r io.Reader) (Request, error) {
	var req Request
	br := bufio.NewReaderSize(io.LimitReader(r, MaxRequest+1), 4096)
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxRequest {
		// Read on through the limit to tell "too long" from "no newline".
		return req, fmt.Errorf("control: request larger than %d bytes", MaxRequest)
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return req, fmt.Errorf("control: read request: %w", err)
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("control: bad request: %w", err)
	}
	if req.Op == "" {
		return req, errors.New("control: bad request: no op")
	}
	return req, nil
}

// refuse answers without serving: the request is read (briefly, bounded)
// first, because closing a socket with unread data resets the connection
// and the client would never see why.
func refuse(c net.Conn, r Response) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(250 * time.Millisecond))
	readRequest(c)
	writeResponse(c, r)
}

func writeResponse(w io.Writer, r Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "control: encode response: " + err.Error()})
	}
	w.Write(append(b, '\n'))
}

// Call sends req to the agent listening at path and returns its response.
// ErrNoAgent means nobody listens (the caller stores the request for the
// agent's next start).
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || isRefused(err) {
			return Response{}, fmt.Errorf("%w (%s)", ErrNoAgent, path)
		}
		return Response{}, fmt.Errorf("control: dial %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(HandlerTimeout + ReadTimeout))
	}
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("control: encode request: %w", err)
	}
	if len(b) > MaxRequest {
		return Response{}, fmt.Errorf("control: request larger than %d bytes", MaxRequest)
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("control: send: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(c, MaxResponse))
	if err != nil {
		return Response{}, fmt.Errorf("control: read response: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return Response{}, fmt.Errorf("control: bad response: %w", err)
	}
	if resp.Error == ErrPeer.Error() {
		return resp, ErrPeer
	}
	return resp, nil
}
