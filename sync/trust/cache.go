package trust

import (
	"container/list"
	"sync"
)

// Cache remembers accepted commits so a re-verification (the next sync
// round, a restart) does not redo signature checks. Keys are the commit hash
// and the hash of the trust set effective for that commit, so any change to
// what is trusted — a local key removed, a repository rotation — misses and
// re-verifies (Flux once served a stale "verified" across a rotation).
// Only accepted SSH results are stored: rejections are cheap to redo, and
// OpenPGP results depend on the clock (expiry, revocation).
type Cache interface {
	Get(commit, trustHash string) (Signer, bool)
	Put(commit, trustHash string, s Signer)
}

// MemoryCache is a bounded LRU Cache, safe for concurrent use.
type MemoryCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front = most recent; values are *cacheEntry
	idx map[cacheKey]*list.Element
}

type cacheKey struct{ commit, trust string }

type cacheEntry struct {
	key cacheKey
	s   Signer
}

// NewMemoryCache returns an LRU cache of at most max entries (at least 1).
func NewMemoryCache(max int) *MemoryCache {
	if max < 1 {
		max = 1
	}
	return &MemoryCache{max: max, ll: list.New(), idx: make(map[cacheKey]*list.Element)}
}

// Get implements Cache.
func (m *MemoryCache) Get(commit, trustHash string) (Signer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.idx[cacheKey{commit, trustHash}]
	if !ok {
		return Signer{}, false
	}
	m.ll.MoveToFront(el)
	return el.Value.(*cacheEntry).s, true
}

// Put implements Cache.
func (m *MemoryCache) Put(commit, trustHash string, s Signer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := cacheKey{commit, trustHash}
	if el, ok := m.idx[k]; ok {
		el.Value.(*cacheEntry).s = s
		m.ll.MoveToFront(el)
		return
	}
	m.idx[k] = m.ll.PushFront(&cacheEntry{key: k, s: s})
	for m.ll.Len() > m.max {
		old := m.ll.Back()
		m.ll.Remove(old)
		delete(m.idx, old.Value.(*cacheEntry).key)
	}
}

// Len is the number of cached entries.
func (m *MemoryCache) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}
