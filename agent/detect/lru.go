package detect

// lru is a bounded map that evicts the least recently used key. Every
// per-source table in the detectors is one, so an attacker rotating through
// millions of addresses costs a fixed amount of memory (REFERENCE: CrowdSec
// and fail2ban grow without bound under IP churn).
type lru[K comparable, V any] struct {
	cap   int
	items map[K]*lruNode[K, V]
	head  lruNode[K, V] // sentinel: head.next is most recent
	evict int
	// onEvict, when set, sees an entry as it is evicted (detectors give
	// back what the entry counted against their budgets).
	onEvict func(k K, v *V)
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](capacity int) *lru[K, V] {
	if capacity < 1 {
		capacity = 1
	}
	l := &lru[K, V]{cap: capacity, items: make(map[K]*lruNode[K, V])}
	l.head.next, l.head.prev = &l.head, &l.head
	return l
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &l.head, l.head.next
	l.head.next.prev = n
	l.head.next = n
}

// get returns the value for k, creating it with mk when absent, and marks it
// most recently used. The pointer stays valid until k is evicted.
func (l *lru[K, V]) get(k K, mk func() V) *V {
	if n, ok := l.items[k]; ok {
		l.unlink(n)
		l.pushFront(n)
		return &n.val
	}
	if len(l.items) >= l.cap {
		old := l.head.prev
		l.unlink(old)
		delete(l.items, old.key)
		l.evict++
		if l.onEvict != nil {
			l.onEvict(old.key, &old.val)
		}
	}
	n := &lruNode[K, V]{key: k, val: mk()}
	l.items[k] = n
	l.pushFront(n)
	return &n.val
}

// peek returns the value for k without creating or touching it.
func (l *lru[K, V]) peek(k K) (*V, bool) {
	n, ok := l.items[k]
	if !ok {
		return nil, false
	}
	return &n.val, true
}

func (l *lru[K, V]) len() int { return len(l.items) }

// each calls fn for every entry, most recent first, without touching order.
func (l *lru[K, V]) each(fn func(k K, v *V)) {
	for n := l.head.next; n != &l.head; n = n.next {
		fn(n.key, &n.val)
	}
}
