package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshDialTimeout bounds the TCP connect and SSH handshake: go-git's ssh
// dial does not take the operation's context.
const sshDialTimeout = 30 * time.Second

// auth builds the transport credentials from the configured files. It runs
// at Open (to report configuration mistakes early) and before every
// operation (so rotated keys, tokens and known_hosts take effect).
func (r *Remote) auth() (transport.AuthMethod, error) {
	switch r.kind {
	case "ssh":
		return r.sshAuth()
	case "http":
		inner, err := r.httpAuth()
		if err != nil {
			return nil, err
		}
		return &routedAuth{t: r.httpT, inner: inner}, nil
	}
	return nil, nil
}

func (r *Remote) httpAuth() (githttp.AuthMethod, error) {
	if r.cfg.Credentials == "" {
		return nil, nil // anonymous, or user:password in the URL (go-git reads it)
	}
	b, err := os.ReadFile(r.cfg.Credentials)
	if err != nil {
		return nil, fmt.Errorf("%w: read credentials: %w", ErrAuth, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("%w: credentials file %s is empty", ErrAuth, r.cfg.Credentials)
	}
	if user, pass, ok := strings.Cut(s, ":"); ok && !strings.ContainsAny(s, "\n") {
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: credentials file %s: want one line, a token or user:password", ErrAuth, r.cfg.Credentials)
	}
	user := r.cfg.Username
	if user == "" {
		user = "x-access-token"
	}
	return &githttp.BasicAuth{Username: user, Password: s}, nil
}

func (r *Remote) sshAuth() (transport.AuthMethod, error) {
	if r.cfg.KnownHosts == "" {
		return nil, fmt.Errorf("%w: ssh remote %s needs a known_hosts file (KnownHosts): "+
			"refusing to trust a host key on first use", ErrHostKey, redact(r.cfg.URL))
	}
	if _, err := os.Stat(r.cfg.KnownHosts); err != nil {
		return nil, fmt.Errorf("%w: known_hosts: %w", ErrHostKey, err)
	}
	if r.cfg.Credentials == "" {
		return nil, fmt.Errorf("%w: ssh remote %s needs a private key file (Credentials)", ErrAuth, redact(r.cfg.URL))
	}
	user := r.ep.User
	if user == "" {
		user = "git"
	}
	pem, err := os.ReadFile(r.cfg.Credentials)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %w", ErrAuth, err)
	}
	if _, err := ssh.ParseRawPrivateKey(pem); err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("%w: private key %s is encrypted; picket needs an unencrypted key (file mode 0600)", ErrAuth, r.cfg.Credentials)
		}
		return nil, fmt.Errorf("%w: private key %s: %w", ErrAuth, r.cfg.Credentials, err)
	}
	keys, err := gitssh.NewPublicKeys(user, pem, "")
	if err != nil {
		return nil, fmt.Errorf("%w: private key %s: %w", ErrAuth, r.cfg.Credentials, err)
	}
	db, err := gitssh.NewKnownHostsDb(r.cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("%w: known_hosts %s: %w", ErrHostKey, r.cfg.KnownHosts, err)
	}
	hostPort := r.hostPort()
	known := db.HostKeyCallback()
	file := r.cfg.KnownHosts
	keys.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := known(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			return fmt.Errorf("%w: %s is not in %s (no trust on first use; add its key with ssh-keyscan after checking it): %w",
				ErrHostKey, hostname, file, err)
		}
		return fmt.Errorf("%w: host key of %s does not match %s (the server's key changed, or someone is in the middle): %w",
			ErrHostKey, hostname, file, err)
	}
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(hostPort)
	return &sshTimeoutAuth{keys}, nil
}

func (r *Remote) hostPort() string {
	port := r.ep.Port
	if port <= 0 {
		port = 22
	}
	return net.JoinHostPort(r.ep.Host, strconv.Itoa(port))
}

// sshTimeoutAuth adds a dial/handshake timeout to go-git's ssh config.
type sshTimeoutAuth struct{ *gitssh.PublicKeys }

func (a *sshTimeoutAuth) ClientConfig() (*ssh.ClientConfig, error) {
	c, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	c.Timeout = sshDialTimeout
	return c, nil
}
