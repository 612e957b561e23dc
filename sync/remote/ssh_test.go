package remote

import (
	"bytes"
	"context"
	"errors"
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

// sshServer is a real sshd on a loopback port, logging in root with a key
// from a test-owned authorized_keys file; git runs through root's shell.
type sshServer struct {
	port      int
	hostPub   string // "ssh-ed25519 AAAA..."
	clientKey string // private key file
}

func keygen(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(integration.Binary(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "picket-test", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pub))
}

func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	integration.Root(t)
	sshd := integration.Binary(t, "sshd")
	if !filepath.IsAbs(sshd) {
		sshd, _ = filepath.Abs(sshd)
	}
	dir := t.TempDir()
	s := &sshServer{clientKey: filepath.Join(dir, "client_key")}
	s.hostPub = keygen(t, filepath.Join(dir, "host_key"))
	clientPub := keygen(t, s.clientKey)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte("no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding "+clientPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			integration.Skip(t, "cannot create /run/sshd: "+err.Error())
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
`, s.port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"))
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", confPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("sshd exited: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *sshServer) url(path string) string {
	return fmt.Sprintf("ssh://root@127.0.0.1:%d%s", s.port, path)
}

func (s *sshServer) knownHosts(t *testing.T, line string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSSH(t *testing.T) {
	u := newUpstream(t)
	s := startSSHD(t)
	url := s.url(u.bare.Dir)
	good := s.knownHosts(t, fmt.Sprintf("[127.0.0.1]:%d %s", s.port, s.hostPub))

	t.Run("fetch and push with the right known_hosts", func(t *testing.T) {
		r := open(t, Config{URL: url, Credentials: s.clientKey, KnownHosts: good})
		heads, err := r.Fetch(context.Background(), "hosts/web1")
		if err != nil {
			t.Fatal(err)
		}
		if heads["main"].String() != u.work.Head(t, "main") || !heads["hosts/web1"].IsZero() {
			t.Fatalf("heads %v", heads)
		}
		c := commitOn(t, r, heads["main"], "status.json", "{}\n")
		if err := r.Push(context.Background(), c, "hosts/web1"); err != nil {
			t.Fatal(err)
		}
		if got := u.bare.Head(t, "hosts/web1"); got != c.String() {
			t.Fatalf("remote hosts/web1 = %s", got)
		}
		stale := commitOn(t, r, heads["main"], "status.json", "{\"x\":1}\n")
		wantKind(t, r.Push(context.Background(), stale, "hosts/web1"), false, ErrNonFastForward)
	})

	t.Run("wrong host key", func(t *testing.T) {
		other := keygen(t, filepath.Join(t.TempDir(), "other"))
		kh := s.knownHosts(t, fmt.Sprintf("[127.0.0.1]:%d %s", s.port, other))
		_, err := open(t, Config{URL: url, Credentials: s.clientKey, KnownHosts: kh}).Fetch(context.Background())
		wantKind(t, err, false, ErrHostKey)
		t.Log(err)
	})

	t.Run("host not in known_hosts", func(t *testing.T) {
		kh := s.knownHosts(t, "git.example.org "+s.hostPub)
		_, err := open(t, Config{URL: url, Credentials: s.clientKey, KnownHosts: kh}).Fetch(context.Background())
		e := wantKind(t, err, false, ErrHostKey)
		if !strings.Contains(e.Error(), "no trust on first use") {
			t.Fatalf("unclear message: %v", err)
		}
		t.Log(err)
	})

	t.Run("no known_hosts configured", func(t *testing.T) {
		_, err := Open(Config{URL: url, Credentials: s.clientKey, Dir: t.TempDir(), Logger: quiet()})
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "known_hosts") {
			t.Fatalf("want a refusal naming known_hosts, got %v", err)
		}
		t.Log(err)
		_, err = Open(Config{URL: url, Credentials: s.clientKey, KnownHosts: filepath.Join(t.TempDir(), "missing"), Dir: t.TempDir(), Logger: quiet()})
		if !errors.Is(err, ErrHostKey) {
			t.Fatalf("missing known_hosts file: %v", err)
		}
	})

	t.Run("key not authorized", func(t *testing.T) {
		stranger := filepath.Join(t.TempDir(), "stranger")
		keygen(t, stranger)
		_, err := open(t, Config{URL: url, Credentials: stranger, KnownHosts: good}).Fetch(context.Background())
		wantKind(t, err, false, ErrAuth)
		t.Log(err)
	})

	t.Run("server down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		kh := s.knownHosts(t, fmt.Sprintf("[127.0.0.1]:%d %s", port, s.hostPub))
		_, err = open(t, Config{URL: fmt.Sprintf("ssh://root@127.0.0.1:%d%s", port, u.bare.Dir), Credentials: s.clientKey, KnownHosts: kh}).Fetch(context.Background())
		wantKind(t, err, true, nil)
	})
}

func TestSSHConfigChecks(t *testing.T) {
	key := filepath.Join(t.TempDir(), "id")
	keygen(t, key)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte("git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600)
	// scp-like syntax is ssh to port 22 with the URL's user.
	r := open(t, Config{URL: "git@git.example.org:org/config.git", Credentials: key, KnownHosts: kh})
	if r.kind != "ssh" || r.hostPort() != "git.example.org:22" || r.ep.User != "git" {
		t.Fatalf("scp-like URL parsed as %s %s %s", r.kind, r.hostPort(), r.ep.User)
	}
	// No key.
	if _, err := Open(Config{URL: "ssh://git.example.org/x.git", KnownHosts: kh, Dir: t.TempDir()}); !errors.Is(err, ErrAuth) {
		t.Fatalf("missing key: %v", err)
	}
	// An encrypted key is refused with a clear message.
	enc := filepath.Join(t.TempDir(), "enc")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "passphrase", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if _, err := Open(Config{URL: "ssh://git.example.org/x.git", KnownHosts: kh, Credentials: enc, Dir: t.TempDir()}); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("encrypted key: %v", err)
	}
	// Unsupported schemes.
	if _, err := Open(Config{URL: "git://git.example.org/x.git", Dir: t.TempDir()}); err == nil {
		t.Fatal("git:// accepted")
	}
}
