package s2s

import (
	"strings"
	"sync"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// normCacheSize bounds the domains a normCache remembers. A host sends from
// a handful of local domains to the remote domains it federates with; past
// this many, the cache starts over rather than grow with whatever names
// stanzas carry.
const normCacheSize = 4096

// normCache remembers domain.Normalize's answers for the domains that
// stanzas name. Send normalises both ends of every stanza, and IDNA
// processing (with its IP-literal check) was the largest cost of the send
// path in the profile: about 60% of SendStanza's CPU and most of its
// allocations, for names that are nearly always the same few. Failures are
// not cached; they are rare and their errors carry the name. The zero value
// is ready; it is safe for concurrent use.
type normCache struct {
	mu sync.RWMutex
	m  map[string]string
}

// normalize is domain.Normalize, remembered.
func (c *normCache) normalize(d string) (string, error) {
	c.mu.RLock()
	n, ok := c.m[d]
	c.mu.RUnlock()
	if ok {
		return n, nil
	}
	n, err := domain.Normalize(d)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= normCacheSize {
		c.m = make(map[string]string)
	}
	// d is a slice of the stanza's attribute; keep a copy of its own so the
	// cache does not hold the stanza's strings.
	c.m[strings.Clone(d)] = n
	c.mu.Unlock()
	return n, nil
}
