// Package health runs the health checks that guard picket's actions: a TCP
// connect, an HTTP status, sshd answering with its banner, the config
// repository's remote reachable, or a fixed executable with arguments
// (never a shell string). The action engine runs them before and after
// every apply and periodically while actions are in force; a check that
// passed before an action and fails after it rolls the action back.
package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/schema"
)

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Env is what the checks need from the host, passed in.
type Env struct {
	// SSHAddrs returns the addresses sshd listens on ("127.0.0.1:22");
	// nil or empty fails the sshd check ("sshd is not listening").
	SSHAddrs func() []string
	// GitRemote checks that the config repository's remote answers; nil
	// means no remote is configured (the check passes and says so).
	GitRemote func(ctx context.Context) error
}

// Checker runs a list of checks.
type Checker struct {
	Checks []schema.Check
	Env    Env
}

// Run runs every check concurrently and returns the results in order.
func (c *Checker) Run(ctx context.Context) []Result {
	out := make([]Result, len(c.Checks))
	var wg sync.WaitGroup
	for i, ch := range c.Checks {
		wg.Go(func() {
			timeout := ch.Timeout.D()
			if timeout <= 0 {
				timeout = 5 * time.Second
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			err := c.one(cctx, ch)
			out[i] = Result{Name: ch.Name, OK: err == nil}
			if err != nil {
				out[i].Detail = err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

func (c *Checker) one(ctx context.Context, ch schema.Check) error {
	switch {
	case ch.TCP != "":
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", ch.TCP)
		if err != nil {
			return err
		}
		return conn.Close()
	case ch.HTTP != "":
		return httpCheck(ctx, ch.HTTP, ch.Status)
	case ch.SSHD:
		return c.sshd(ctx)
	case ch.GitRemote:
		if c.Env.GitRemote == nil {
			return nil
		}
		return c.Env.GitRemote(ctx)
	case len(ch.Exec) > 0:
		cmd := exec.CommandContext(ctx, ch.Exec[0], ch.Exec[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", ch.Exec[0], err, firstLine(out))
		}
		return nil
	}
	return errors.New("check has no kind")
}

func httpCheck(ctx context.Context, url string, want int) error {
	if want == 0 {
		want = http.StatusOK
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No keep-alive: each check is a fresh connection, like a new visitor.
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// sshd passes when one of sshd's addresses accepts a connection and greets
// with an SSH banner: a new login would get through.
func (c *Checker) sshd(ctx context.Context) error {
	var addrs []string
	if c.Env.SSHAddrs != nil {
		addrs = c.Env.SSHAddrs()
	}
	if len(addrs) == 0 {
		return errors.New("sshd is not listening")
	}
	var errs []error
	for _, a := range addrs {
		err := banner(ctx, a)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func banner(ctx context.Context, addr string) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: no banner: %w", addr, err)
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("%s: not an SSH banner: %q", addr, firstLine([]byte(line)))
	}
	return nil
}

// DialAddr turns a listening address into one to connect to: a wildcard
// listener is reached over loopback.
func DialAddr(ip net.IP, port int) string {
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
