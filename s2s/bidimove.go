package s2s

import "errors"

// Two servers that open their first streams to each other at the same
// moment (each link dialled before the other's stream was authenticated)
// end up with two connections, each bidirectional (XEP-0288), each
// carrying one direction. They converge on one by a rule both sides
// apply on their own, with nothing said on the wire: the connection
// opened by the server whose domain sorts first (the pair's domains in
// their normal form, byte order) stays; the other server's link, which
// finds the peer's stream usable for its pair, moves onto it.
//
// The move loses and reorders nothing. The link stops writing to its own
// stream, waits until the peer acknowledged everything written there
// (XEP-0198; without it, nothing to wait for), closes its stream with
// </stream:stream> and waits for the peer's close, which the peer sends
// only after reading (and delivering) all that came before it; only then
// does the link take its stream down and connect again, which finds the
// peer's stream (bidiRoute) and writes what waited, in order, there.
// Stanzas queued meanwhile wait in the link's queue as during any
// connect. A peer that never closes is found by the keepalive, as any
// silent peer is. Streams shared by several links (piggybacking) are
// left as they are.

// errMoved is the reason of the LinkDown of a link that left its own
// stream for the peer's bidi stream.
var errMoved = errors.New("s2s: moved onto the peer's bidi stream")

// offerMoves lets our links of the pairs the bidi stream s may carry
// consider moving onto it: it was just authenticated for one, or its
// stream after SASL just began.
func (s *inStream) offerMoves() {
	m := s.m
	s.mu.Lock()
	ps := make([]pair, 0, len(s.links))
	for k := range s.links {
		ps = append(ps, pair{k.To, k.From})
	}
	s.mu.Unlock()
	for _, p := range ps {
		if l := m.outLinkFor(p); l != nil && s.carries(p) {
			l.considerMove()
		}
	}
}

// considerMove starts moving the link off its own stream when the rule
// above says its stream is the one to go. Called when the peer's stream
// becomes usable for the pair (indexBidi) and when the link comes up on a
// stream of its own while the peer's is there.
func (l *outLink) considerMove() {
	if l.m.cfg.DisableBidi || l.pair.local < l.pair.remote {
		return // ours is the connection that stays
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	oc, ok := l.conn.(*outConn)
	if !ok || l.moving != nil || l.draining || oc.p != l.pair || oc.refs.Load() != 1 {
		return
	}
	// Marked before refs is read again, as a pair joining the stream
	// (piggyback.go) counts itself before it reads the mark: one of the
	// two sees the other, so no pair joins a stream about to close.
	oc.leaving.Store(true)
	if oc.refs.Load() != 1 {
		oc.leaving.Store(false)
		return
	}
	l.moving = oc
	wakeLinkLocked(l)
}

// wakeLinkLocked is (*outLink).wakeLocked, called through a variable set
// in init: considerMove is reached from the stream feature table (an
// authenticated pair, indexBidi), and a direct reference would make the
// table's initialization depend on the links' owner goroutine, which
// negotiates through the table.
var wakeLinkLocked func(*outLink) bool

func init() { wakeLinkLocked = (*outLink).wakeLocked }
