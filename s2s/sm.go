package s2s

import (
	"encoding/xml"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/keepalive"
	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// XEP-0198 Stream Management, the stream feature, so that a stanza is
// acknowledged by its receiver, never silently lost with a stream that
// died (package sm has the elements and the counting; see its doc for why
// there is no resumption).
//
// Receiving side: <sm/> is listed wherever dialback is (so before
// authentication on a dialback stream, which never restarts; XEP-0198 lets
// the receiving entity list it and refuses only an <enable/> that comes
// before authentication), and after SASL. Once enabled, every stanza
// handed to the host counts as handled, each <r/> is answered with
// <a h='N'/> at once, and a stream we close ends with a last <a/>.
//
// Initiating side: once the stream is authenticated and the peer listed
// <sm/>, the link's first write is <enable/> and its first stanzas,
// without waiting for <enabled/>; the stream keeps what it writes until
// acknowledged, and the reader takes the peer's answer: <failed/> turns
// acknowledgements off, and the link goes on without them (smout.go).
var smEntry = feature{
	id:        featSM,
	name:      xml.Name{Space: sm.NS, Local: "sm"},
	ns:        sm.NS,
	list:      (*inStream).listSM,
	handle:    (*inStream).handleSM,
	negotiate: (*outStream).enableSM,
}

// smIn is stream management on an incoming stream. The reader sets it
// and counts; closeStream, on any goroutine, reads the count for the final
// <a/>, so both are atomic (an uncontended add per stanza).
type smIn struct {
	on  atomic.Bool
	h   atomic.Uint32 // stanzas handled since <enabled/>, modulo 2^32
	buf []byte        // the reader's, for <a/>
}

// handled counts a stanza the host was given; a no-op without SM.
func (x *smIn) handled() {
	if x.on.Load() {
		x.h.Add(1)
	}
}

// finalAnswer is the <a/> a stream with SM ends with (XEP-0198 §4, "before
// closing the stream"), so that the peer knows what was handled and sends
// none of it again; nil without SM.
func (x *smIn) finalAnswer() []byte {
	if !x.on.Load() {
		return nil
	}
	return sm.AppendAnswer(nil, x.h.Load())
}

func (s *inStream) listSM(st *settings) []byte {
	if s.m.cfg.DisableStreamManagement {
		return nil
	}
	if _, required := st.tls.Offer(); required && !s.is(stateSecure) {
		return nil
	}
	return sm.Feature
}

// handleSM takes an XEP-0198 element on an incoming stream.
func (s *inStream) handleSM(st *settings, ep *epoch, e wire.Element) (flow, error) {
	el, err := sm.Parse(e.Raw)
	if err != nil {
		return flowOn, s.fail(stream.BadFormat, domain.ClipText(err.Error()))
	}
	x := &s.sm
	switch el.Kind {
	case sm.KindEnable:
		var why string
		switch {
		case ep.listed&featSM == 0:
			why = "service-unavailable"
		case !s.is(stateAuthed):
			// XEP-0198 §3: not before authentication.
			why = "unexpected-request"
		case x.on.Load():
			why = "unexpected-request"
		}
		if why != "" {
			s.m.log.Debug("s2s: refused stream management", "peer", s.peer, "condition", why)
			return flowOn, s.write(sm.AppendFailed(nil, why))
		}
		// We count from <enabled/>: every stanza read after it is the
		// peer's, sent after its <enable/>.
		x.h.Store(0)
		x.on.Store(true)
		s.startKeepAlive() // counts from now, not from when the peer reads <enabled/>
		// The reverse direction of a bidi stream counts from the same
		// element: no stanza of ours comes between it and the sender
		// (smrev.go).
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if s.closed {
			return flowOn, net.ErrClosed
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
		if _, err := s.conn.Write(sm.Enabled); err != nil {
			return flowOn, err
		}
		s.startRevLocked()
		return flowOn, nil
	case sm.KindRequest:
		if !x.on.Load() {
			return flowOn, s.fail(stream.UnsupportedStanzaType, "<r/> before stream management was enabled")
		}
		x.buf = sm.AppendAnswer(x.buf[:0], x.h.Load())
		return flowOn, s.write(x.buf)
	case sm.KindAnswer:
		// What our links wrote back on a bidi stream (smrev.go); on
		// any other stream this answers a keepalive <r/>, or is the
		// final <a/> a peer sends as it closes.
		return flowOn, s.revAnswer(el.H)
	}
	return flowOn, s.fail(stream.UnsupportedStanzaType, fmt.Sprintf("<%s/> is for the initiating side of a stream", el.Kind))
}

// enableSM decides, once the stream is authenticated and the peer listed
// <sm/>, that the stream asks for stream management. Nothing is written
// or read here: <enable/> goes out with the link's first write, its
// stanzas right behind it, and the stream's reader takes the answer
// (pipelined, smout.go), which saves the new link a round trip.
//
// Stanzas the peer sends back on a bidi stream before its <enabled/>
// (another Manager does, when a link of its finds the stream as soon as
// our pair is authenticated) reach the reader like any other, and are
// delivered but not counted: the peer counts from its <enabled/>.
func (o *outStream) enableSM(f *wire.Feature) (flow, error) {
	if f == nil || !o.wantAuth || !o.is(stateAuthed) || o.m.cfg.DisableStreamManagement {
		return flowOn, nil
	}
	o.sm = true
	return flowOn, nil
}

// alive wraps the connection of a new incoming stream so that every byte
// the peer sends, whitespace keepalives included, counts as life for the
// keepalive (without KeepAlive, it is c).
func (s *inStream) alive(m *Manager, c net.Conn) net.Conn {
	if m.cfg.KeepAlive <= 0 {
		return c
	}
	s.ka = keepalive.New(m.cfg.KeepAlive, m.clock.Now())
	return &keepalive.Conn{Conn: c, M: s.ka, Now: m.clock.Now}
}

// startKeepAlive probes the peer of a stream on which it enabled XEP-0198:
// silent for KeepAlive, it gets a <r/>, which it must answer; silent for
// KeepAlive more, the stream is dead and ends. Without stream management
// an incoming stream cannot be probed (the peer owes us no answer), and
// only IdleTimeout ends it.
func (s *inStream) startKeepAlive() {
	if s.ka == nil {
		return
	}
	s.mu.Lock()
	if s.kaTimer == nil {
		s.kaTimer = s.m.clock.AfterFunc(s.ka.Every(), s.keepaliveFired)
	}
	s.mu.Unlock()
}

func (s *inStream) stopKeepAlive() {
	s.mu.Lock()
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	if s.revTimer != nil {
		s.revTimer.Stop()
		s.revTimer = nil
	}
	s.mu.Unlock()
}

func (s *inStream) keepaliveFired() {
	if s.ctx.Err() != nil {
		return
	}
	now := s.m.clock.Now()
	act, next := s.ka.Check(now)
	what := "sent nothing"
	if act != keepalive.Dead && s.revUnanswered(now, s.ka.Every()) {
		act, what = keepalive.Dead, "did not answer"
	}
	switch act {
	case keepalive.Dead:
		k := s.ka.Every()
		s.wmu.Lock()
		if !s.closed {
			s.why = fmt.Errorf("%w: %s %s within %s of our <r/>", ErrKeepAlive, domain.Clip(s.peer), what, k)
		}
		s.wmu.Unlock()
		s.m.log.Warn("s2s: incoming stream dead", "peer", s.peer, "keepalive", k)
		se := withText(stream.ConnectionTimeout, "no answer to <r/>")
		s.closeStream(&se)
		return
	}
	// The next check is armed before the probe goes out, so that it
	// counts from now whatever the peer does with the probe.
	s.mu.Lock()
	if s.ctx.Err() == nil {
		s.kaTimer = s.m.clock.AfterFunc(next.Sub(now), s.keepaliveFired)
	}
	s.mu.Unlock()
	if act == keepalive.Probe {
		s.ka.Probed(now)
		s.requestRev(true)
		if s.m.cfg.probedIn != nil {
			s.m.cfg.probedIn(s.local, s.peer)
		}
	}
}
