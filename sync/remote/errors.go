package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Sentinels, matched with errors.Is through *Error.
var (
	// ErrNonFastForward: a push was refused because the remote branch has
	// commits the pushed commit does not contain (someone else pushed, or
	// the branch was rewritten). Fetch, rebase and push again.
	ErrNonFastForward = errors.New("non-fast-forward update rejected")
	// ErrAuth: the remote refused the credentials (HTTP 401/403, SSH
	// authentication failure) or needs credentials that were not given.
	ErrAuth = errors.New("authentication failed")
	// ErrHostKey: the SSH server's host key is not in the known_hosts file,
	// does not match it, or no known_hosts file is configured (no trust on
	// first use).
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrNotFound: the repository does not exist at the URL (over HTTP a
	// host may answer 401 instead for private repositories; that is ErrAuth).
	ErrNotFound = errors.New("repository not found")
	// ErrBranchNotFound: the configured main branch does not exist on the
	// remote (or the remote repository is empty).
	ErrBranchNotFound = errors.New("branch not found on remote")
)

// Error is what Fetch and Push return for every failure. Callers treat any
// error as "offline" (keep the last verified config, keep queuing) and report
// the kind: Temporary errors (network errors, DNS failures, connection
// refused, timeouts, HTTP 5xx and 429) are expected to go away by themselves;
// the others (authentication, host key, repository or branch not found,
// non-fast-forward, a cancelled context) need someone or something to act.
type Error struct {
	Op        string // "fetch" or "push"
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("remote %s (%s): %v", e.Op, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTemporary reports whether err is an *Error marked Temporary.
func IsTemporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary
}

// classify turns an error from go-git (or from our own checks) into an
// *Error with the right kind and sentinel. go-git hides some causes behind
// types without Unwrap (plumbing.UnexpectedError) or in plain strings (push
// rejections, ssh failures), so this looks at types first and at messages
// as a last resort.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	wrap := func(sentinel error, temporary bool) error {
		if sentinel != nil && !errors.Is(err, sentinel) {
			err = &kindError{kind: sentinel, err: err}
		}
		return &Error{Op: op, Temporary: temporary, Err: err}
	}
	msg := err.Error()

	switch {
	case errors.Is(err, context.Canceled):
		return wrap(nil, false)
	case errors.Is(err, context.DeadlineExceeded):
		return wrap(nil, true)
	case errors.Is(err, ErrNonFastForward), errors.Is(err, ErrAuth), errors.Is(err, ErrHostKey),
		errors.Is(err, ErrNotFound), errors.Is(err, ErrBranchNotFound):
		return wrap(nil, false)
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return wrap(ErrAuth, false)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return wrap(ErrNotFound, false)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return wrap(ErrBranchNotFound, false)
	}

	var keyErr *knownhosts.KeyError
	if errors.As(err, &keyErr) || strings.Contains(msg, "knownhosts:") {
		return wrap(ErrHostKey, false)
	}
	if strings.Contains(msg, "ssh: unable to authenticate") || strings.Contains(msg, "no supported methods remain") {
		return wrap(ErrAuth, false)
	}
	if isNonFastForward(msg) {
		return wrap(ErrNonFastForward, false)
	}

	if status := httpStatus(err); status != 0 {
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return wrap(ErrAuth, false)
		case status == http.StatusNotFound:
			return wrap(ErrNotFound, false)
		case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
			return wrap(nil, true)
		default:
			return wrap(nil, false)
		}
	}

	if isNetwork(err) {
		return wrap(nil, true)
	}
	return wrap(nil, false)
}

// kindError attaches a sentinel to an error without repeating the
// sentinel's text when the message already says it.
type kindError struct{ kind, err error }

func (k *kindError) Error() string {
	m := strings.TrimSpace(k.err.Error())
	if strings.HasPrefix(m, k.kind.Error()) {
		return m
	}
	return k.kind.Error() + ": " + m
}

func (k *kindError) Unwrap() []error { return []error{k.kind, k.err} }

// isNonFastForward recognises go-git's client-side refusal ("non-fast-forward
// update: refs/heads/x") and server-side rejections reported through
// report-status ("command error on refs/heads/x: non-fast-forward", "fetch
// first", git's "denying non-fast-forward").
func isNonFastForward(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "non-fast-forward") || strings.Contains(m, "non fast forward") ||
		strings.Contains(m, "fetch first") || strings.Contains(m, "(you should pull first)") ||
		strings.Contains(m, "stale info") || strings.Contains(m, "but expected")
}

// httpStatus digs the status code out of go-git's HTTP error, which is
// wrapped in a plumbing.UnexpectedError that has no Unwrap method.
func httpStatus(err error) int {
	for e := err; e != nil; {
		var herr *githttp.Err
		if errors.As(e, &herr) && herr.Response != nil {
			return herr.StatusCode()
		}
		var ue *plumbing.UnexpectedError
		if errors.As(e, &ue) {
			e = ue.Err
			continue
		}
		var pe *plumbing.PermanentError
		if errors.As(e, &pe) {
			e = pe.Err
			continue
		}
		break
	}
	return 0
}

func isNetwork(err error) bool {
	for e := err; e != nil; {
		var ne net.Error
		var dnsErr *net.DNSError
		var opErr *net.OpError
		switch {
		case errors.As(e, &dnsErr), errors.As(e, &opErr):
			return true
		case errors.As(e, &ne) && ne.Timeout():
			return true
		case errors.Is(e, syscall.ECONNREFUSED), errors.Is(e, syscall.ECONNRESET),
			errors.Is(e, syscall.ECONNABORTED), errors.Is(e, syscall.EHOSTUNREACH),
			errors.Is(e, syscall.ENETUNREACH), errors.Is(e, syscall.EPIPE), errors.Is(e, syscall.ETIMEDOUT),
			errors.Is(e, io.ErrUnexpectedEOF), errors.Is(e, io.EOF), errors.Is(e, net.ErrClosed):
			return true
		}
		var ue *plumbing.UnexpectedError
		if errors.As(e, &ue) {
			e = ue.Err
			continue
		}
		break
	}
	m := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "no such host", "i/o timeout",
		"broken pipe", "unexpected EOF", "server misbehaving", "network is unreachable", "TLS handshake timeout"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
