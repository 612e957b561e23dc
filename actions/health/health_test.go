package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/picket-agent/picket/internal/sshdtest"
	"github.com/picket-agent/picket/schema"
)

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer web.Close()
	cases := []struct {
		name  string
		check schema.Check
		env   Env
		ok    bool
	}{
		{"tcp open", schema.Check{TCP: ln.Addr().String()}, Env{}, true},
		{"tcp closed", schema.Check{TCP: closedPort(t)}, Env{}, false},
		{"http 200", schema.Check{HTTP: web.URL + "/", Status: 200}, Env{}, true},
		{"http 502", schema.Check{HTTP: web.URL + "/down", Status: 200}, Env{}, false},
		{"http wants 502", schema.Check{HTTP: web.URL + "/down", Status: 502}, Env{}, true},
		{"exec true", schema.Check{Exec: []string{"/bin/true"}}, Env{}, true},
		{"exec false", schema.Check{Exec: []string{"/bin/false"}}, Env{}, false},
		{"exec argv not shell", schema.Check{Exec: []string{"/bin/test", "1 -eq 1; true"}}, Env{}, true},
		{"exec missing", schema.Check{Exec: []string{"/nonexistent/check"}}, Env{}, false},
		{"git no remote", schema.Check{GitRemote: true}, Env{}, true},
		{"git down", schema.Check{GitRemote: true}, Env{GitRemote: func(context.Context) error { return errors.New("refused") }}, false},
		{"sshd none", schema.Check{SSHD: true}, Env{}, false},
		{"sshd not ssh", schema.Check{SSHD: true}, Env{SSHAddrs: func() []string { return []string{ln.Addr().String()} }}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check.Name = c.name
			got := (&Checker{Checks: []schema.Check{c.check}, Env: c.env}).Run(context.Background())
			if len(got) != 1 || got[0].OK != c.ok || got[0].Name != c.name || (got[0].OK == (got[0].Detail != "")) {
				t.Fatalf("got %+v, want ok=%v", got, c.ok)
			}
		})
	}
}

// TestSSHDCheck runs the check against a real sshd, then after it stopped.
func TestSSHDCheck(t *testing.T) {
	s := sshdtest.Start(t, "")
	c := &Checker{Checks: []schema.Check{{Name: "sshd", SSHD: true}}, Env: Env{SSHAddrs: func() []string { return []string{s.Addr} }}}
	if r := c.Run(context.Background()); !r[0].OK {
		t.Fatalf("sshd running: %+v", r)
	}
	s.Cmd.Process.Kill()
	s.Cmd.Process.Wait()
	if r := c.Run(context.Background()); r[0].OK {
		t.Fatalf("sshd stopped: %+v", r)
	}
}
