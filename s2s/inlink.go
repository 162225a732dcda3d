package s2s

import (
	"crypto/tls"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
)

// lookup returns the authenticated pair a stanza from → to travels on and its
// counters, or a nil *inLink when the pair is not registered (yet). Only
// the stream's reader calls it: it keeps the last pair it found, so that a
// run of stanzas for one pair takes no lock and no map lookup each (a
// link, once registered, is never replaced).
func (s *inStream) lookup(from, to string) (dialback.Pair, *inLink) {
	if c := &s.lastLink; c.lk != nil && c.from == from && c.to == to {
		return c.p, c.lk
	}
	p, lk := s.find(from, to)
	if lk != nil {
		s.lastLink = foundLink{from, to, p, lk}
	}
	return p, lk
}

// foundLink is what lookup last found for from → to.
type foundLink struct {
	from, to string
	p        dialback.Pair
	lk       *inLink
}

// find is lookup without the reader's memory.
func (s *inStream) find(from, to string) (dialback.Pair, *inLink) {
	p := dialback.Pair{From: from, To: to}
	s.mu.Lock()
	lk := s.links[p]
	s.mu.Unlock()
	if lk != nil {
		return p, lk
	}
	// The peer wrote the domains in another form; normalise (rare).
	f, err1 := domain.Normalize(from)
	t, err2 := domain.Normalize(to)
	if err1 != nil || err2 != nil {
		return p, nil
	}
	p = dialback.Pair{From: f, To: t}
	s.mu.Lock()
	lk = s.links[p]
	s.mu.Unlock()
	return p, lk
}

// linkInfo describes one pair of the stream for an event. Building it from
// the pair at hand, instead of listing every pair of the stream and
// normalising both domains again, keeps an Observer from costing two IDNA
// conversions and a slice per delivered stanza.
func (s *inStream) linkInfo(p dialback.Pair, lk *inLink) LinkInfo {
	s.wmu.Lock()
	state := s.tls
	s.wmu.Unlock()
	if lk == nil {
		info := linkInfo(Incoming, pair{p.To, p.From}, &state, 0, time.Time{}, 0, 0, 0)
		info.Stream = s.sid
		return info
	}
	return lk.info(p, &state, s.sid)
}

// info describes the pair p of the stream sid whose TLS state is state.
func (lk *inLink) info(p dialback.Pair, state *tls.ConnectionState, sid uint64) LinkInfo {
	info := linkInfo(Incoming, pair{p.To, p.From}, state, lk.auth, lk.since, lk.in.Load(), 0, 0)
	info.Stream = sid
	return info
}
