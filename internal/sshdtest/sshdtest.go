// Package sshdtest starts a real OpenSSH server for tests: its own host
// key, config and port on loopback, killed at cleanup. Tests of the health
// checks and of pausing SSH use it; it skips (or fails, in CI) without root
// or sshd.
package sshdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// Server is a running sshd.
type Server struct {
	Addr string // "127.0.0.1:port" (or the address given)
	Port int
	Cmd  *exec.Cmd
}

// Start runs sshd -D listening on listen ("127.0.0.1" when empty) and a
// free port, and waits until it accepts connections.
func Start(t testing.TB, listen string) *Server { return StartIn(t, nil, listen, 0) }

// StartIn is Start with sshd run under a command prefix (["ip", "netns",
// "exec", NAME] to put it in a network namespace) and a fixed port when
// port is not 0; dial is how the test reaches it (Do in the namespace).
func StartIn(t testing.TB, prefix []string, listen string, port int) *Server {
	t.Helper()
	integration.Root(t)
	sshd := integration.Binary(t, "sshd")
	keygen := integration.Binary(t, "ssh-keygen")
	if !filepath.IsAbs(sshd) {
		sshd, _ = filepath.Abs(sshd)
	}
	if listen == "" {
		listen = "127.0.0.1"
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "host_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			integration.Skip(t, "cannot create /run/sshd: "+err.Error())
		}
	}
	if port == 0 {
		port = freePort(t, listen)
	}
	conf := fmt.Sprintf("Port %d\nListenAddress %s\nHostKey %s\nPidFile none\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel ERROR\n",
		port, listen, key)
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	argv := append(append([]string(nil), prefix...), sshd, "-D", "-e", "-f", confPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s := &Server{Addr: net.JoinHostPort(listen, fmt.Sprint(port)), Port: port, Cmd: cmd}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for len(prefix) > 0 {
		// Not reachable from here: wait for the log-free start instead.
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("sshd exited: %v: %s", err, strings.TrimSpace(stderr.String()))
		case <-time.After(300 * time.Millisecond):
			return s
		}
	}
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("sshd exited: %v: %s", err, strings.TrimSpace(stderr.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %s", s.Addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB, host string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
