package s2s

import (
	"fmt"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/sm"
)

// XEP-0198 for the reverse direction of an incoming bidi stream: the
// stanzas our outgoing links write back over a stream the peer opened
// (XEP-0288; each link through its inView, bidi.go), kept until the peer
// acknowledges them, as on a stream of our own (smout.go).
//
// XEP-0198 §4 lets either party ask for acknowledgements once stream
// management is enabled, and counts on each side the stanzas received
// since <enabled/> (for us, the receiving entity: since we wrote it), so
// the peer that enabled SM on its stream owes us an <a/> for our <r/>
// whatever direction the stream was opened in; XEP-0288 says nothing of
// its own about it. The stream has one sender for every link writing to
// it: its count and buffer are changed under wmu, the lock that orders
// the links' writes, so that the count follows the bytes on the wire.
// The peer's <a/> reaches handleSM; the stream's death hands what is
// unacknowledged back to each stanza's own pair's link (requeue.go).
//
// A peer that enabled SM may still not count what it receives on a stream
// it opened (a server that reads XEP-0198 as one-way, or an older version
// of this library, which answered every <r/> there with h='0'): our
// buffer would then fill and the links on the stream stall, or the
// keepalive would end a stream that works. So the reverse direction is
// acknowledged only once the peer proved it counts: until an <a/> of its
// has acknowledged one of our stanzas, an answer that acknowledges less
// than what our one outstanding <r/> covered, a count too high, or a <r/>
// of ours unanswered for KeepAlive while the peer is heard from otherwise
// turns reverse acknowledgements off for the stream (what it held counts
// as written: "written or bounced", as without SM), with a log line, and
// no link is ended for it. Once the peer has proved it, its answers are
// held to the same rules as on our own streams: a <r/> unanswered for
// KeepAlive ends the stream, and a count too high is a stream error.
// Prosody 0.12 (mod_smacks) counts stanzas on the streams it opened from
// its <enabled/> on and answers our <r/> there (internal/interop pins it).

// smRev is the reverse direction's sender of one incoming stream.
type smRev struct {
	*smOut
	// trusted: an <a/> of the peer's acknowledged one of our stanzas.
	trusted atomic.Bool
}

// startRevLocked gives the stream its reverse sender as <enabled/> is written,
// with wmu held, when the peer asked for bidi: no stanza of ours can come
// between the two.
func (s *inStream) startRevLocked() {
	if s.m.cfg.DisableBidi || !s.bidi || (!s.bidiSecure && s.is(stateSecure)) {
		return
	}
	s.rsm.Store(&smRev{smOut: newSMOut(s.m)})
}

// revWrite writes a view's batch under wmu (the caller holds it) with the
// stream's reverse sender, when it has one: the batch is recorded before
// the write (the peer may answer the batch's <r/> before the write
// returns), each stanza counted as its view's until acknowledged, and
// what a failed write did not write is taken back.
func (s *inStream) revWrite(v *inView, ctrl [][]byte, batch []Stanza) (int, error) {
	r := s.rsm.Load()
	if r == nil {
		return writeBatch(v.w, ctrl, batch, nil)
	}
	for i := range batch {
		batch[i].held = &v.held
	}
	v.held.Add(int64(len(batch)))
	// With several links writing here, the <r/> one link asked for its
	// last batch may go out with another's write, before that batch: then
	// each batch asks for itself, as on a shared outgoing stream.
	done, err := r.write(v.w, ctrl, batch, s.writers.Load() > 1)
	if err != nil {
		v.held.Add(-int64(len(batch) - done))
	}
	return done, err
}

// release forgets the stanzas r held as the views' (they were handed back,
// acknowledged, or count as written): one add per run of stanzas of the
// same view, not one per stanza.
func release(q []Stanza) {
	var held *atomic.Int64
	k := int64(0)
	for i := range q {
		if h := q[i].held; h != held {
			if held != nil {
				held.Add(-k)
			}
			held, k = h, 0
		}
		k++
	}
	if held != nil {
		held.Add(-k)
	}
}

// revAnswer applies the peer's <a/> to the reverse sender, on the reader's
// goroutine.
func (s *inStream) revAnswer(h uint32) error {
	r := s.rsm.Load()
	if r == nil {
		return nil
	}
	now := s.m.clock.Now()
	r.mu.Lock()
	covered, asked := r.s.Covered()
	trusted := r.trusted.Load()
	n, err := r.s.AckRuns(h, now, release)
	r.mu.Unlock()
	switch {
	case err != nil && trusted:
		s.m.log.Warn("s2s: the peer's stream management count is wrong", "peer", s.peer, "err", err)
		return s.fail(stream.UndefinedCondition, domain.ClipText(err.Error()))
	case err != nil:
		s.dropRev(r, fmt.Sprintf("its <a/> acknowledged more than we sent (%v)", err))
		return nil
	case n > 0:
		r.trusted.Store(true)
	case !trusted && asked == 1 && h != covered:
		s.dropRev(r, fmt.Sprintf("it answered our <r/>, sent after %d stanzas, with h=%d", covered, h))
		return nil
	}
	s.wakeViews()
	return nil
}

// dropRev turns reverse acknowledgements off for the stream: the peer does
// not count the stanzas we send on it. What r held counts as written.
func (s *inStream) dropRev(r *smRev, why string) {
	s.wmu.Lock()
	if !s.rsm.CompareAndSwap(r, nil) {
		s.wmu.Unlock()
		return
	}
	release(r.take())
	s.wmu.Unlock()
	s.m.log.Info("s2s: the peer does not acknowledge what we send on its bidi stream; going on without XEP-0198 in that direction",
		"peer", s.peer, "why", why)
	s.wakeViews()
}

// wakeViews wakes the links writing to the stream that wait for room or
// for acknowledgements (a drain).
func (s *inStream) wakeViews() {
	s.mu.Lock()
	views := append([]*outLink(nil), s.views...)
	s.mu.Unlock()
	for _, l := range views {
		wakeOnView(l, s)
	}
}

// wakeOnView is (*outLink).wakeOnView, called through a variable set in
// init: this file is reached from the stream feature table (handleSM),
// and a direct reference would make the table's initialization depend on
// the links' owner goroutine, which negotiates through the table.
var wakeOnView func(l *outLink, s *inStream)

func init() { wakeOnView = (*outLink).wakeOnView }

// wakeOnView wakes l's owner if l writes to s and waits for room or for
// acknowledgements.
func (l *outLink) wakeOnView(s *inStream) {
	l.mu.Lock()
	if v, ok := l.conn.(*inView); ok && v.s == s && (len(l.queue) > 0 || l.draining) {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// requestRev writes a <r/> for the reverse direction (a probe, or the
// request timer when stanzas wait for one: only then when due).
func (s *inStream) requestRev(probe bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	r := s.rsm.Load()
	if !probe {
		if r == nil {
			return nil
		}
		if _, ok := r.uncovered(); !ok {
			return nil
		}
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	if _, err := s.conn.Write(sm.Request); err != nil {
		return err
	}
	if r != nil {
		r.wroteRequest(s.m.clock.Now())
	}
	return nil
}

// armRevRequest arms the stream's request timer when a link parks with
// stanzas written on it that no <r/> followed (as armRequestTimer does
// for a link's own stream).
func (s *inStream) armRevRequest() {
	r := s.rsm.Load()
	if r == nil {
		return
	}
	due, ok := r.uncovered()
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revTimer != nil || s.ctx.Err() != nil {
		return
	}
	s.revTimer = s.m.clock.AfterFunc(max(due.Sub(s.m.clock.Now()), 0), func() {
		s.mu.Lock()
		s.revTimer = nil
		s.mu.Unlock()
		s.requestRev(false)
	})
}

// revUnanswered checks, at a keepalive tick, the reverse direction's
// oldest unanswered <r/>: older than k, it ends a stream whose peer proved
// it answers (dead reports so), and turns reverse acknowledgements off on
// one that never did but was heard from since.
func (s *inStream) revUnanswered(now time.Time, k time.Duration) (dead bool) {
	r := s.rsm.Load()
	if r == nil {
		return false
	}
	since, ok := r.awaiting()
	if !ok || now.Sub(since) < k {
		return false
	}
	if r.trusted.Load() {
		return true
	}
	if s.ka.Last().After(since) {
		s.dropRev(r, fmt.Sprintf("it did not answer our <r/> within %s", k))
	}
	return false
}

// endRev takes, as the stream ends, what the reverse direction held
// unacknowledged, for the pairs' links (requeue.go). Called with wmu held
// and closed set, so that no view records a write after it.
func (s *inStream) endRevLocked() []Stanza {
	r := s.rsm.Load()
	if r == nil {
		return nil
	}
	q := r.take()
	release(q)
	return q
}

// holding is how many stanzas the view's link wrote on the stream that
// the peer has not acknowledged.
func (v *inView) holding() int { return int(v.held.Load()) }
