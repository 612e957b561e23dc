package container

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeInspector answers from a map, counting calls; block makes it wait
// until released (or its context ends).
type fakeInspector struct {
	mu      sync.Mutex
	known   map[string][2]string
	calls   map[string]int
	err     error // returned for every id when set
	block   chan struct{}
	started chan string
}

func newFakeInspector() *fakeInspector {
	return &fakeInspector{known: map[string][2]string{webID: {"web-1", "nginx:1.27"}},
		calls: map[string]int{}, started: make(chan string, 100)}
}

func (f *fakeInspector) Inspect(ctx context.Context, id string) (string, string, error) {
	f.mu.Lock()
	f.calls[id]++
	block, err := f.block, f.err
	v, ok := f.known[id]
	f.mu.Unlock()
	select {
	case f.started <- id:
	default:
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
	}
	switch {
	case err != nil:
		return "", "", err
	case !ok:
		return "", "", ErrNotFound
	}
	return v[0], v[1], nil
}

func (f *fakeInspector) n(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitIdle waits for the resolver's background requests to finish.
func waitIdle(t *testing.T, r *Resolver) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.inflight)
		r.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("background requests did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestResolverLookupCaches(t *testing.T) {
	f := newFakeInspector()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	r := NewResolver(ResolverOptions{Inspector: f, Now: clk.Now, TTL: time.Minute, NegativeTTL: 10 * time.Second})
	defer r.Close()

	if _, _, ok := r.Lookup(Docker, webID); ok {
		t.Fatal("first Lookup answered from an empty cache")
	}
	waitIdle(t, r)
	name, image, ok := r.Lookup(Docker, webID)
	if !ok || name != "web-1" || image != "nginx:1.27" {
		t.Fatalf("Lookup = %q %q %v", name, image, ok)
	}
	for range 100 {
		r.Lookup(Docker, webID)
	}
	if n := f.n(webID); n != 1 {
		t.Errorf("%d requests for a cached container, want 1", n)
	}

	// Other runtimes are not this resolver's business.
	if _, _, ok := r.Lookup(Containerd, webID); ok || f.n(webID) != 1 {
		t.Error("containerd lookup went to the docker resolver")
	}

	// Expired: the old answer is served while it is refreshed.
	clk.Add(2 * time.Minute)
	if name, _, ok := r.Lookup(Docker, webID); !ok || name != "web-1" {
		t.Errorf("expired entry: Lookup = %q %v, want the stale name", name, ok)
	}
	waitIdle(t, r)
	if n := f.n(webID); n != 2 {
		t.Errorf("%d requests after expiry, want 2", n)
	}
}

func TestResolverNegativeCache(t *testing.T) {
	f := newFakeInspector()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	r := NewResolver(ResolverOptions{Inspector: f, Now: clk.Now, NegativeTTL: 10 * time.Second})
	defer r.Close()
	gone := strings.Repeat("e", 64)
	r.Lookup(Docker, gone)
	waitIdle(t, r)
	for range 50 {
		if _, _, ok := r.Lookup(Docker, gone); ok {
			t.Fatal("unknown container resolved")
		}
	}
	if _, _, err := r.Resolve(context.Background(), gone); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve of a remembered unknown: %v", err)
	}
	if n := f.n(gone); n != 1 {
		t.Errorf("%d requests for an unknown container within NegativeTTL, want 1", n)
	}
	clk.Add(11 * time.Second)
	r.Lookup(Docker, gone)
	waitIdle(t, r)
	if n := f.n(gone); n != 2 {
		t.Errorf("%d requests after NegativeTTL, want 2", n)
	}
}

// A daemon that is down costs one request per NegativeTTL, whatever the
// number of containers asked about.
func TestResolverBackoff(t *testing.T) {
	f := newFakeInspector()
	f.err = errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	r := NewResolver(ResolverOptions{Inspector: f, Now: clk.Now, NegativeTTL: 30 * time.Second})
	defer r.Close()
	r.Lookup(Docker, webID)
	waitIdle(t, r)
	other := strings.Repeat("1", 64)
	r.Lookup(Docker, other)
	if _, _, err := r.Resolve(context.Background(), other); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Resolve during backoff: %v, want ErrUnavailable", err)
	}
	waitIdle(t, r)
	if f.n(webID)+f.n(other) != 1 {
		t.Errorf("requests during backoff: %d+%d, want 1 in all", f.n(webID), f.n(other))
	}
	clk.Add(31 * time.Second)
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	if name, _, err := r.Resolve(context.Background(), webID); err != nil || name != "web-1" {
		t.Errorf("after backoff: %q %v", name, err)
	}
}

// Lookup must not wait for a slow daemon, and must not pile up requests.
func TestResolverLookupNeverBlocks(t *testing.T) {
	f := newFakeInspector()
	f.block = make(chan struct{})
	r := NewResolver(ResolverOptions{Inspector: f, Workers: 2, Timeout: 10 * time.Second})
	ids := []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64), strings.Repeat("d", 64)}
	start := time.Now()
	for range 100 {
		for _, id := range ids {
			r.Lookup(Docker, id)
		}
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("400 lookups against a wedged daemon took %v", el)
	}
	<-f.started
	<-f.started
	total := 0
	for _, id := range ids {
		total += f.n(id)
	}
	if total != 2 {
		t.Errorf("%d requests in flight, want Workers=2", total)
	}
	// Close ends the wedged requests instead of waiting for the daemon.
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the wedged daemon")
	}
}

func TestResolveTimeout(t *testing.T) {
	f := newFakeInspector()
	f.block = make(chan struct{})
	defer close(f.block)
	r := NewResolver(ResolverOptions{Inspector: f, Timeout: 100 * time.Millisecond})
	defer r.Close()
	start := time.Now()
	if _, _, err := r.Resolve(context.Background(), webID); err == nil {
		t.Error("Resolve against a wedged daemon succeeded")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Resolve took %v with a 100ms timeout", el)
	}
}

func TestResolverBounded(t *testing.T) {
	f := newFakeInspector()
	r := NewResolver(ResolverOptions{Inspector: f, Max: 50})
	defer r.Close()
	for i := range 500 {
		id := strings.Repeat("0", 60) + hex4(i)
		if _, _, err := r.Resolve(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := r.Len(); n > 50 {
		t.Errorf("cache holds %d entries, Max 50", n)
	}
}

func hex4(i int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[i>>12&15], digits[i>>8&15], digits[i>>4&15], digits[i&15]})
}

// End to end over the socket: the resolver on a real Client and the
// recorded daemon.
func TestResolverWithClient(t *testing.T) {
	d := newFakeDaemon(t)
	r := NewResolver(ResolverOptions{Inspector: NewClient(d.socket, time.Second)})
	defer r.Close()
	name, image, err := r.Resolve(context.Background(), webID)
	if err != nil || name != "web-1" || image != "nginx:1.27" {
		t.Fatalf("Resolve = %q %q %v", name, image, err)
	}
	rs := Resolvers{NewResolver(ResolverOptions{Runtime: Podman, Inspector: newFakeInspector()}), r}
	defer rs[0].Close()
	if name, _, ok := rs.Lookup(Docker, webID); !ok || name != "web-1" {
		t.Errorf("Resolvers.Lookup(docker) = %q %v", name, ok)
	}
	if _, _, ok := rs.Lookup(CRIO, webID); ok {
		t.Error("Resolvers answered for a runtime none of them serves")
	}
}
