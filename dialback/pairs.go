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
	set atomic.Pointer[pairSet]
}

// pairSet is a set of pairs, never changed once stored: a short list,
// which is what almost every stream has (one pair, or a few piggybacked
// ones), or a map over listMax. A stream's set lives as long as the
// stream, and a map of one pair costs about five times the list.
type pairSet struct {
	list []Pair
	m    map[Pair]struct{} // instead of list, when there are more
}

// listMax is the most pairs kept as a list; past it a lookup hashes.
const listMax = 8

func (s *pairSet) has(k Pair) bool {
	if s == nil {
		return false
	}
	if s.m != nil {
		_, ok := s.m[k]
		return ok
	}
	for _, q := range s.list {
		if q == k {
			return true
		}
	}
	return false
}

func (s *pairSet) len() int {
	if s == nil {
		return 0
	}
	if s.m != nil {
		return len(s.m)
	}
	return len(s.list)
}

// all returns the pairs, in no order, in a new slice with room for extra
// more.
func (s *pairSet) all(extra int) []Pair {
	l := make([]Pair, 0, s.len()+extra)
	if s == nil {
		return l
	}
	if s.m == nil {
		return append(l, s.list...)
	}
	for q := range s.m {
		l = append(l, q)
	}
	return l
}

// newPairSet makes the set of l, which holds no pair twice.
func newPairSet(l []Pair) *pairSet {
	if len(l) <= listMax {
		return &pairSet{list: l}
	}
	m := make(map[Pair]struct{}, len(l))
	for _, q := range l {
		m[q] = struct{}{}
	}
	return &pairSet{m: m}
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
	old := p.set.Load()
	if old.has(k) {
		return nil
	}
	p.set.Store(newPairSet(append(old.all(1), k)))
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
	old := p.set.Load()
	if !old.has(k) {
		return
	}
	l := slices.DeleteFunc(old.all(0), func(q Pair) bool { return q == k })
	p.set.Store(newPairSet(l))
}

// Has reports whether from→to was authenticated. The domains may be written
// in any form the peer chose; they are compared normalised.
func (p *Pairs) Has(from, to string) bool {
	_, ok := p.Match(from, to)
	return ok
}

// Match is Has that also returns the authenticated pair, normalised: the
// domains a stanza from→to is to be read as. A stanza's stream checks its
// pair first and then needs its domains in normal form; a pair written in
// normal form is found as it is, so Match returns it without normalising
// it again.
func (p *Pairs) Match(from, to string) (Pair, bool) {
	s := p.set.Load()
	if s.len() == 0 {
		return Pair{}, false
	}
	if k := (Pair{from, to}); s.has(k) {
		// Equal to a pair that was normalised when it was added.
		return k, true
	}
	if isNormal(from) && isNormal(to) {
		// Normalising would not change them: the miss is final.
		return Pair{}, false
	}
	k, err := normPair(from, to)
	if err != nil || !s.has(k) {
		return Pair{}, false
	}
	return k, true
}

// Clone returns a copy of the set, which changes apart from p from then on:
// for a verification that must not touch the stream's set until its
// stream is known to be still the one it was asked on.
func (p *Pairs) Clone() *Pairs {
	c := new(Pairs)
	if s := p.set.Load(); s != nil {
		c.set.Store(s) // sets are never changed once stored
	}
	return c
}

// Len returns the number of authenticated pairs.
func (p *Pairs) Len() int { return p.set.Load().len() }

// List returns the pairs, sorted by From, then To.
func (p *Pairs) List() []Pair {
	l := p.set.Load().all(0)
	slices.SortFunc(l, func(a, b Pair) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	return l
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
