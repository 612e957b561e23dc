package container

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Inspector names a container; *Client is the real one.
type Inspector interface {
	Inspect(ctx context.Context, id string) (name, image string, err error)
}

// ResolverOptions configure a Resolver. Zero values take the defaults.
type ResolverOptions struct {
	// Runtime is the event.Container.Runtime this resolver answers for
	// (Docker by default; a resolver on podman's socket answers for
	// Podman). Lookups for other runtimes return at once.
	Runtime string
	// Inspector asks the daemon; by default a Client on DefaultDockerSocket.
	Inspector Inspector
	// TTL is how long a name is trusted (10 min): containers are rarely
	// renamed, and the next exec after expiry refreshes it.
	TTL time.Duration
	// NegativeTTL is how long "unknown id" and "daemon unreachable" are
	// remembered (1 min), so a host without docker, or processes of a
	// runtime the daemon does not manage, cost one failed request per
	// minute rather than one per exec.
	NegativeTTL time.Duration
	// Max bounds the cache (1024 containers).
	Max int
	// Timeout bounds one request (1 s).
	Timeout time.Duration
	// Workers bounds concurrent background requests started by Lookup (2);
	// lookups beyond that are dropped and retried by a later exec.
	Workers int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Resolver maps container ids to names and images through the daemon's API,
// with a bounded cache, a negative cache, and a backoff when the daemon is
// unreachable. It is safe for concurrent use.
//
// Lookup never waits for the daemon: the process table calls it on the exec
// hot path, where a slow dockerd must not delay detection. A miss starts a
// background request and the name appears on that container's later
// events. Resolve is the blocking form (bounded by Timeout) for callers that
// can wait, such as building an incident.
type Resolver struct {
	o   ResolverOptions
	sem chan struct{} // background request slots

	ctx    context.Context // cancelled by Close: ends background requests
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	cache     map[string]cached
	inflight  map[string]bool
	downUntil time.Time // daemon unreachable: no requests before this
}

type cached struct {
	name, image string
	found       bool // false: negative entry
	until       time.Time
}

// NewResolver returns a resolver; Close it to stop background requests.
func NewResolver(o ResolverOptions) *Resolver {
	if o.Runtime == "" {
		o.Runtime = Docker
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Inspector == nil {
		o.Inspector = NewClient("", o.Timeout)
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Minute
	}
	if o.Max <= 0 {
		o.Max = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Resolver{o: o, sem: make(chan struct{}, o.Workers), ctx: ctx, cancel: cancel,
		cache: map[string]cached{}, inflight: map[string]bool{}}
}

// Lookup returns the cached name and image of a container without waiting.
// ok is false when the runtime is not this resolver's, the id is unknown to
// the daemon, or the answer is not cached yet (a background request is then
// started, unless one is running, all workers are busy or the daemon is in
// backoff). An expired answer is returned while it is being refreshed.
func (r *Resolver) Lookup(runtime, id string) (name, image string, ok bool) {
	if runtime != r.o.Runtime || id == "" {
		return "", "", false
	}
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	c, hit := r.cache[id]
	if hit && now.Before(c.until) {
		return c.name, c.image, c.found
	}
	// An expired name is still the best answer while it is refreshed:
	// renames are rare, and dropping it would blank the name on every
	// exec until the daemon answers.
	name, image, ok = c.name, c.image, hit && c.found
	if r.inflight[id] || now.Before(r.downUntil) || r.ctx.Err() != nil {
		return name, image, ok
	}
	select {
	case r.sem <- struct{}{}:
	default:
		return name, image, ok // all workers busy: a later exec retries
	}
	r.inflight[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.sem }()
		_, _, _ = r.fetch(r.ctx, id)
	}()
	return name, image, ok
}

// Resolve returns a container's name and image, from the cache or by asking
// the daemon (at most Timeout). A remembered negative answer is returned as
// ErrNotFound; a daemon in backoff as ErrUnavailable.
func (r *Resolver) Resolve(ctx context.Context, id string) (name, image string, err error) {
	now := r.o.Now()
	r.mu.Lock()
	c, hit := r.cache[id]
	down := now.Before(r.downUntil)
	r.mu.Unlock()
	switch {
	case hit && now.Before(c.until) && c.found:
		return c.name, c.image, nil
	case hit && now.Before(c.until):
		return "", "", ErrNotFound
	case down:
		return "", "", ErrUnavailable
	}
	return r.fetch(ctx, id)
}

// ErrUnavailable is returned by Resolve while the daemon is in backoff after
// a failed request.
var ErrUnavailable = errors.New("container runtime API unavailable")

// fetch asks the daemon and records the answer.
func (r *Resolver) fetch(parent context.Context, id string) (name, image string, err error) {
	ctx, cancel := context.WithTimeout(parent, r.o.Timeout)
	defer cancel()
	name, image, err = r.o.Inspector.Inspect(ctx, id)
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inflight, id)
	switch {
	case err == nil:
		r.put(id, cached{name: name, image: image, found: true, until: now.Add(r.o.TTL)})
	case errors.Is(err, ErrNotFound):
		r.put(id, cached{until: now.Add(r.o.NegativeTTL)})
	case parent.Err() != nil:
		// The caller gave up, or the resolver is closing: not the
		// daemon's fault.
	default:
		// Unreachable, timed out or erroring: back off for every id, since
		// the next request would most likely fail the same way.
		r.downUntil = now.Add(r.o.NegativeTTL)
	}
	return name, image, err
}

// put stores one answer, keeping the cache within Max: expired entries go
// first, then arbitrary ones (map order), which is enough for a cache whose
// misses cost one local request.
func (r *Resolver) put(id string, c cached) {
	if _, ok := r.cache[id]; !ok && len(r.cache) >= r.o.Max {
		now := r.o.Now()
		for k, v := range r.cache {
			if !now.Before(v.until) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < r.o.Max {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[id] = c
}

// Len is the number of cached answers (positive and negative).
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cache)
}

// Close cancels background requests and waits for them to end.
func (r *Resolver) Close() {
	r.cancel()
	r.wg.Wait()
	if c, ok := r.o.Inspector.(*Client); ok {
		c.Close()
	}
}

// Resolvers consults several resolvers (say dockerd's and podman's), each
// answering for its own runtime.
type Resolvers []*Resolver

// Lookup asks the resolver for runtime, without waiting (see
// Resolver.Lookup).
func (rs Resolvers) Lookup(runtime, id string) (name, image string, ok bool) {
	for _, r := range rs {
		if r.o.Runtime == runtime {
			return r.Lookup(runtime, id)
		}
	}
	return "", "", false
}
