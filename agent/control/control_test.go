package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, s *Server, h Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
}

func echo(_ context.Context, r Request, p Peer) Response {
	b, _ := json.Marshal(map[string]any{"op": r.Op, "uid": p.UID})
	return Response{OK: true, Body: b}
}

func TestCallAndLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	if _, err := Call(context.Background(), path, Request{Op: "ping"}); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("no agent: %v", err)
	}
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path, nil); err == nil {
		t.Fatal("second listener on a live socket")
	}
	serve(t, s, echo)

	// A client that connects and says nothing holds a slot only until
	// the read deadline; meanwhile others are served.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	for _, c := range []struct {
		name string
		send string
		want string
	}{
		{"ok", `{"op":"ping"}` + "\n", `"ok":true`},
		{"no newline", `{"op":"ping"}`, `"ok":true`},
		{"garbage", "not json\n", "bad request"},
		{"no op", `{}` + "\n", "no op"},
		{"too large", `{"op":"` + strings.Repeat("a", MaxRequest+10) + `"}` + "\n", "larger than"},
	} {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(c.send))
		conn.(*net.UnixConn).CloseWrite()
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		conn.Close()
		if !strings.Contains(string(buf[:n]), c.want) {
			t.Errorf("%s: got %q", c.name, buf[:n])
		}
	}
	resp, err := Call(context.Background(), path, Request{Op: "hello"})
	if err != nil || !resp.OK || !strings.Contains(string(resp.Body), `"uid":`) {
		t.Fatalf("call: %+v %v", resp, err)
	}
}

func TestPeerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.allowed = func(p Peer) bool { return p.UID == 12345 && p.PID > 0 }
	serve(t, s, echo)
	if _, err := Call(context.Background(), path, Request{Op: "ping"}); !errors.Is(err, ErrPeer) {
		t.Fatalf("peer not refused: %v", err)
	}
}

func TestBusyRefusesBeyondMaxConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	serve(t, s, func(ctx context.Context, r Request, p Peer) Response {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Response{OK: true}
	})
	defer close(release)
	var conns []net.Conn
	for range MaxConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(`{"op":"wait"}` + "\n"))
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := Call(ctx, path, Request{Op: "ping"})
	if err != nil || resp.OK || !strings.Contains(resp.Error, "busy") {
		t.Fatalf("extra connection: %+v %v", resp, err)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"op":"feedback","body":{"verdict":"correct"}}` + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(strings.NewReader(string(b)))
		if err == nil && req.Op == "" {
			t.Fatal("accepted a request without op")
		}
	})
}
