package dialback

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// Pair is a domain pair: From is the sender domain, To the target domain,
// both normalised by the functions that return a Pair.
type Pair struct {
	From, To string
}

// Pairs is the set of domain pairs dialback authenticated on one incoming
// stream. The stream owner asks [Pairs.Has] for every stanza and refuses the
// stanzas of any other pair.
//
// The zero value is an empty set. Pairs is safe for concurrent use; it must
// not be copied after first use. Reads take no lock and do not allocate for
// domains already in normal form, because they happen once per stanza while
// writes happen once per dialback.
type Pairs struct {
	mu  sync.Mutex // serialises writers
	set atomic.Pointer[map[Pair]struct{}]
}

// Add records from→to as authenticated. It fails only when a domain is not
// valid (the error wraps domain.ErrInvalid).
func (p *Pairs) Add(from, to string) error {
	k, err := normPair(from, to)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.load()
	if _, ok := old[k]; ok {
		return nil
	}
	m := make(map[Pair]struct{}, len(old)+1)
	for q := range old {
		m[q] = struct{}{}
	}
	m[k] = struct{}{}
	p.set.Store(&m)
	return nil
}

// Remove forgets from→to. Removing an absent or invalid pair does nothing.
func (p *Pairs) Remove(from, to string) {
	k, err := normPair(from, to)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.load()
	if _, ok := old[k]; !ok {
		return
	}
	m := make(map[Pair]struct{}, len(old))
	for q := range old {
		if q != k {
			m[q] = struct{}{}
		}
	}
	p.set.Store(&m)
}

// Has reports whether from→to was authenticated. The domains may be written
// in any form the peer chose; they are compared normalised.
func (p *Pairs) Has(from, to string) bool {
	m := p.load()
	if len(m) == 0 {
		return false
	}
	if _, ok := m[Pair{from, to}]; ok {
		return true
	}
	if isNormal(from) && isNormal(to) {
		// Normalising would not change them: the miss is final.
		return false
	}
	k, err := normPair(from, to)
	if err != nil {
		return false
	}
	_, ok := m[k]
	return ok
}

// Clone returns a copy of the set, which changes apart from p from then on:
// for a verification that must not touch the stream's set until its
// stream is known to be still the one it was asked on.
func (p *Pairs) Clone() *Pairs {
	c := new(Pairs)
	if m := p.set.Load(); m != nil {
		c.set.Store(m) // the maps are never changed once stored
	}
	return c
}

// Len returns the number of authenticated pairs.
func (p *Pairs) Len() int { return len(p.load()) }

// List returns the pairs, sorted by From, then To.
func (p *Pairs) List() []Pair {
	m := p.load()
	l := make([]Pair, 0, len(m))
	for q := range m {
		l = append(l, q)
	}
	slices.SortFunc(l, func(a, b Pair) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	return l
}

func (p *Pairs) load() map[Pair]struct{} {
	if m := p.set.Load(); m != nil {
		return *m
	}
	return nil
}

// isNormal reports whether s is made only of the bytes a normalised domain
// can contain (lower-case LDH and dots, no trailing dot). Such a string is
// either its own normal form or invalid, so Has can skip normalising it.
func isNormal(s string) bool {
	if s == "" || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func normPair(from, to string) (Pair, error) {
	f, err := domain.Normalize(from)
	if err != nil {
		return Pair{}, fmt.Errorf("dialback: from: %w", err)
	}
	t, err := domain.Normalize(to)
	if err != nil {
		return Pair{}, fmt.Errorf("dialback: to: %w", err)
	}
	return Pair{f, t}, nil
}
