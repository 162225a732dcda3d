package s2s

import (
	"encoding/xml"
	"fmt"
	"sync/atomic"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
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
// Initiating side: not yet (the outgoing link's side comes with its
// buffer of unacknowledged stanzas).
var smEntry = feature{
	id:     featSM,
	name:   xml.Name{Space: sm.NS, Local: "sm"},
	ns:     sm.NS,
	list:   (*inStream).listSM,
	handle: (*inStream).handleSM,
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
		return flowOn, s.write(sm.Enabled)
	case sm.KindRequest:
		if !x.on.Load() {
			return flowOn, s.fail(stream.UnsupportedStanzaType, "<r/> before stream management was enabled")
		}
		x.buf = sm.AppendAnswer(x.buf[:0], x.h.Load())
		return flowOn, s.write(x.buf)
	case sm.KindAnswer:
		// We write no stanzas on an incoming stream (without XEP-0288),
		// so there is nothing to acknowledge: this is the answer to a
		// keepalive <r/>, or the final <a/> a peer sends as it closes.
		return flowOn, nil
	}
	return flowOn, s.fail(stream.UnsupportedStanzaType, fmt.Sprintf("<%s/> is for the initiating side of a stream", el.Kind))
}
