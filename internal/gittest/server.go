package gittest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

// ServerOptions configures ServeHTTP.
type ServerOptions struct {
	// User and Password, when User is set, require HTTP basic auth on every
	// request; a missing or wrong credential gets 401.
	User, Password string
	// TLS serves https with a certificate for 127.0.0.1 made for the test
	// (Server.CertPool trusts it).
	TLS bool
}

// Server serves the bare repositories under a root directory with the real
// `git http-backend` (smart HTTP, fetch and push) on a loopback port. Stop
// and Start close and reopen the listener on the same port, so a client sees
// a real outage (connection refused) and a real recovery.
type Server struct {
	root    string
	addr    string
	handler http.Handler

	mu      sync.Mutex
	srv     *http.Server
	fails   int
	status  int
	header  http.Header
	stopped bool

	requests atomic.Int64
	tlsConf  *tls.Config
	pool     *x509.CertPool
}

// ServeHTTP starts a server for the repositories under root (a repository
// "config.git" in root is at s.URL("config.git")). It is stopped when the
// test ends.
func ServeHTTP(t testing.TB, root string, opt ServerOptions) *Server {
	t.Helper()
	gitBin := integration.Binary(t, "git")
	out, err := exec.Command(gitBin, "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := exec.LookPath(backend); err != nil {
		integration.Skip(t, "git-http-backend not found: "+err.Error())
	}
	home := t.TempDir()
	env := append(Env(t, home),
		"GIT_PROJECT_ROOT="+root,
		"GIT_HTTP_EXPORT_ALL=1",
		// Enable pushes without REMOTE_USER, and accept pushes to any
		// branch of a bare repository.
		"GIT_CONFIG_COUNT=1",
		"GIT_CONFIG_KEY_0=http.receivepack",
		"GIT_CONFIG_VALUE_0=true",
	)
	s := &Server{root: root}
	if opt.TLS {
		s.tlsConf, s.pool = selfSigned(t)
	}
	cgiHandler := &cgi.Handler{
		Path:   backend,
		Root:   "/",
		Dir:    root,
		Env:    env,
		Stderr: io.Discard,
	}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if status, h := s.takeFailure(); status != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			http.Error(w, fmt.Sprintf("gittest: injected failure %d", status), status)
			return
		}
		if opt.User != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != opt.User || p != opt.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		cgiHandler.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	s.stopped = false
	go func() { _ = srv.Serve(ln) }()
}

func (s *Server) takeFailure() (int, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails <= 0 {
		return 0, nil
	}
	s.fails--
	return s.status, s.header
}

// URL returns the clone URL of the repository repo (a path relative to
// root), e.g. "http://127.0.0.1:41234/config.git".
func (s *Server) URL(repo string) string {
	scheme := "http://"
	if s.tlsConf != nil {
		scheme = "https://"
	}
	return scheme + s.addr + "/" + strings.TrimPrefix(repo, "/")
}

// CertPool trusts the server's test certificate (TLS servers only).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// selfSigned makes a certificate for 127.0.0.1 valid for an hour.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gittest"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

// Addr returns the server's host:port, the same across Stop and Start.
func (s *Server) Addr() string { return s.addr }

// Stop closes the listener and every open connection: clients get
// "connection refused" until Start. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.srv == nil {
		return
	}
	_ = s.srv.Close()
	s.stopped = true
}

// Start listens again on the same address after Stop. It retries briefly if
// the port is not yet free, and fails the test if it cannot get it back.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		return
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("gittest: restart on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// FailNext makes the next n requests fail with status (e.g. 503) before
// reaching git.
func (s *Server) FailNext(n, status int) { s.FailNextWith(n, status, nil) }

// FailNextWith is FailNext with response headers, e.g. a Retry-After on 429.
func (s *Server) FailNextWith(n, status int, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails, s.status, s.header = n, status, header
}

// Requests returns the number of HTTP requests received so far, failed
// ones included.
func (s *Server) Requests() int { return int(s.requests.Load()) }
