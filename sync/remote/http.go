package remote

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

// Retry defaults, used for zero fields of RetryPolicy.
const (
	DefaultAttempts = 4
	DefaultWaitMin  = 500 * time.Millisecond
	DefaultWaitMax  = 30 * time.Second
)

// RetryPolicy bounds the retries of HTTP(S) requests.
type RetryPolicy struct {
	// Attempts is the total number of tries of one request (first try
	// included); default DefaultAttempts. 1 disables retries.
	Attempts int
	// WaitMin is the first backoff; it doubles on each retry (with jitter).
	// Default DefaultWaitMin.
	WaitMin time.Duration
	// WaitMax caps any single wait, including one asked for by a server's
	// Retry-After: when a 429/503 asks for longer, the request is not
	// retried and fails at once as a temporary error. Default
	// DefaultWaitMax.
	WaitMax time.Duration
	// Transport is the underlying round tripper (TLS settings, proxies
	// live here); default a pooled cleanhttp transport with a 60 s
	// response-header timeout.
	Transport http.RoundTripper
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = DefaultAttempts
	}
	if p.WaitMin <= 0 {
		p.WaitMin = DefaultWaitMin
	}
	if p.WaitMax <= 0 {
		p.WaitMax = DefaultWaitMax
	}
	if p.WaitMax < p.WaitMin {
		p.WaitMax = p.WaitMin
	}
	return p
}

// NewHTTPClient returns an *http.Client whose transport is go-retryablehttp:
// exponential backoff with jitter, retries on network errors, 429 and 5xx
// (except 501), Retry-After honoured up to p.WaitMax, at most p.Attempts
// tries, and the request's context honoured (a cancel ends the wait at
// once). When the last try still gets an HTTP error status, that response is
// returned (not a Go error), so go-git reports the real status.
func NewHTTPClient(p RetryPolicy, logger *slog.Logger) *http.Client {
	p = p.withDefaults()
	rc := retryablehttp.NewClient()
	tr := p.Transport
	if tr == nil {
		t := cleanhttp.DefaultPooledTransport()
		t.ResponseHeaderTimeout = 60 * time.Second
		tr = t
	}
	rc.HTTPClient = &http.Client{Transport: tr}
	rc.RetryMax = p.Attempts - 1
	rc.RetryWaitMin = p.WaitMin
	rc.RetryWaitMax = p.WaitMax
	if logger != nil {
		rc.Logger = leveled{logger}
	} else {
		rc.Logger = nil
	}
	rc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if d, ok := retryAfter(resp); ok && d > p.WaitMax {
			return false, nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	rc.Backoff = func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		if d, ok := retryAfter(resp); ok {
			return min64(d, max)
		}
		d := min << uint(min64(time.Duration(attempt), 20))
		if d <= 0 || d > max {
			d = max
		}
		// Full jitter on the upper half: between d/2 and d.
		return d/2 + rand.N(d/2+1)
	}
	rc.ErrorHandler = func(resp *http.Response, err error, _ int) (*http.Response, error) {
		if resp != nil {
			return resp, nil
		}
		return nil, err
	}
	return rc.StandardClient()
}

func min64(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// retryAfter parses Retry-After (seconds or HTTP date) on a 429 or 503.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(24*time.Hour/time.Second) {
			s = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// leveled adapts slog to retryablehttp.LeveledLogger; retries are logged at
// debug level, failures at warn (an unreachable remote is expected).
type leveled struct{ l *slog.Logger }

func (l leveled) Error(msg string, kv ...any) { l.l.Warn("http: "+msg, kv...) }
func (l leveled) Warn(msg string, kv ...any)  { l.l.Warn("http: "+msg, kv...) }
func (l leveled) Info(msg string, kv ...any)  { l.l.Debug("http: "+msg, kv...) }
func (l leveled) Debug(msg string, kv ...any) { l.l.Debug("http: "+msg, kv...) }

// The go-git transport registry (client.Protocols) is a global map keyed by
// URL scheme, and go-git offers no per-call transport in v5. We therefore
// install, once, a dispatching transport for "http" and "https": a Remote
// hands its own HTTP transport (built on its own retrying client) to the
// dispatcher inside the AuthMethod it passes to go-git, and anything else
// (go-git used directly with ordinary auth) gets the default client.
var (
	installOnce sync.Once
	dispatch    = &httpDispatcher{}
)

// InstallHTTP installs picket's HTTP(S) transport into go-git's global
// transport registry and makes c the client for go-git HTTP operations not
// made through a Remote (nil: NewHTTPClient with default policy). Call it
// once from main, before any goroutine uses go-git: the registry is a plain
// map in go-git, the one process-wide global of this package. Open installs
// the dispatcher too if InstallHTTP was never called, so calling it is only
// required to choose the default client; calling it again only swaps that
// client.
func InstallHTTP(c *http.Client) {
	if c == nil {
		c = NewHTTPClient(RetryPolicy{}, nil)
	}
	t := githttp.NewClient(c)
	dispatch.def.Store(&t)
	installDispatcher()
}

func installDispatcher() {
	installOnce.Do(func() {
		if dispatch.def.Load() == nil {
			t := githttp.NewClient(NewHTTPClient(RetryPolicy{}, nil))
			dispatch.def.Store(&t)
		}
		client.InstallProtocol("https", dispatch)
		client.InstallProtocol("http", dispatch)
	})
}

type httpDispatcher struct {
	def atomic.Pointer[transport.Transport]
}

// routedAuth carries a Remote's HTTP transport and real credentials
// (possibly none) through go-git to the dispatcher.
type routedAuth struct {
	t     transport.Transport
	inner githttp.AuthMethod // nil: anonymous
}

func (a *routedAuth) Name() string {
	if a.inner == nil {
		return "anonymous"
	}
	return a.inner.Name()
}

func (a *routedAuth) String() string {
	if a.inner == nil {
		return "anonymous"
	}
	return a.inner.String() // BasicAuth masks the password
}

func (d *httpDispatcher) pick(auth transport.AuthMethod) (transport.Transport, transport.AuthMethod) {
	if ra, ok := auth.(*routedAuth); ok {
		if ra.inner == nil {
			return ra.t, nil
		}
		return ra.t, ra.inner
	}
	return *d.def.Load(), auth
}

func (d *httpDispatcher) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	t, a := d.pick(auth)
	return t.NewUploadPackSession(ep, a)
}

func (d *httpDispatcher) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	t, a := d.pick(auth)
	return t.NewReceivePackSession(ep, a)
}
