package s2s

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// The negotiation core: one table of stream features, read by both
// directions. The receiving side (inStream, incoming.go) lists the entries
// in <stream:features> and gives each element the peer sends to the entry
// of its namespace; the initiating side (outStream, negotiateOut below)
// reads the peer's <stream:features> and lets each entry act on its own
// feature, in table order. Everything a feature needs, both sides of it, is
// its entry, in a file named after it:
//
//	starttls.go   STARTTLS (RFC 6120 §5)
//	external.go   SASL EXTERNAL (RFC 6120 §6, XEP-0178)
//	dialback.go   Server Dialback (XEP-0220, XEP-0185)
//	limits.go     stream limits (XEP-0478)
//	sm.go         stream management (XEP-0198)
//	bidi.go       bidirectional streams (XEP-0288)
//
// The shape is mellium's StreamFeature (Necessary, Prohibited, List,
// Parse+Negotiate) with a Handle for the receiving side, which mellium's
// Session does itself and we cannot use (negotiate.go says why).

// streamState is what a stream has negotiated so far: the bits a feature
// needs (necessary) or rules out (prohibited).
type streamState uint32

const (
	// stateSecure: TLS protects the stream (STARTTLS or direct TLS).
	stateSecure streamState = 1 << iota
	// stateDirect: TLS came first, before any header (XEP-0368).
	stateDirect
	// stateSASL: SASL authenticated the peer (receiving) or us
	// (initiating); the stream restarted after <success/>.
	stateSASL
	// stateAuthed: at least one domain pair is authenticated on the
	// stream, by SASL or dialback. On an incoming stream it is set by the
	// goroutine that commits a dialback verification, so entries read it
	// with is, never from a copy taken earlier.
	stateAuthed
)

// flow is what an entry tells the core to do next.
type flow uint8

const (
	// flowOn: go on; read the next element (receiving) or let the next
	// entry act (initiating). From a guard: the element is not the
	// guard's business.
	flowOn flow = iota
	// flowRestart: the stream restarts on the connection as it now is
	// (after TLS, after SASL <success/>): new headers, new features.
	flowRestart
	// flowDone (initiating only): the stream is ready; stop negotiating.
	flowDone
)

// featureID names an entry, as a bit: an incoming epoch records the
// entries it listed (epoch.listed).
type featureID uint32

const (
	featStartTLS featureID = 1 << iota
	featSASLExternal
	featDialback
	featLimits
	featSM
	featBidi
)

// feature is one stream feature, both sides of it. Only the funcs a feature
// needs are set.
type feature struct {
	id   featureID
	name xml.Name // the child of <stream:features>
	// ns is the namespace of the elements the receiving side's handle
	// takes (empty: none).
	ns string
	// necessary and prohibited gate list, guard and negotiate: each runs
	// only on a stream whose state has every necessary bit and no
	// prohibited one.
	necessary, prohibited streamState

	// list (receiving side) returns the feature's child of this stream's
	// <stream:features>, or nil when it is not offered.
	list func(s *inStream, st *settings) []byte
	// guard (receiving side) sees every element before it is dispatched,
	// while the entry's bits hold: a feature that must be negotiated
	// before anything else (STARTTLS when required) refuses the rest here.
	guard func(s *inStream, st *settings, e wire.Element) (flow, error)
	// handle (receiving side) takes each element of ns, in any state: it
	// says itself what is out of place (STARTTLS twice, <auth/> not
	// offered). ep is the stream the element came on.
	handle func(s *inStream, st *settings, ep *epoch, e wire.Element) (flow, error)

	// negotiate (initiating side) acts on the peer's features: f is the
	// child named name, nil when the peer did not list it (an entry may
	// act on absence, as STARTTLS does when we require it). It may write,
	// read answers on o.r, swap the connection (o.secure), and set state
	// bits.
	negotiate func(o *outStream, f *wire.Feature) (flow, error)
}

// streamFeatures is the table, in the order features are listed and
// negotiated: TLS before authentication (RFC 6120 §5.3.1), SASL before
// dialback (a peer that can prove its name with a certificate needs no
// round trip to its authoritative server). A new feature is an entry here
// and a file of its own.
var streamFeatures = []feature{
	startTLSEntry,
	bidiEntry,
	saslExternalEntry,
	dialbackEntry,
	limitsEntry,
	smEntry,
}

// guarded is the entries of streamFeatures that have a guard, in table
// order: dispatch goes through them for every element, and most entries
// have none (testing each entry per element was about 90 instructions of
// the answering Manager's ping round trip).
var guarded []*feature

func init() {
	for i := range streamFeatures {
		if f := &streamFeatures[i]; f.guard != nil {
			guarded = append(guarded, f)
		}
	}
}

// negotiator is what both directions keep of a connection while they
// negotiate on it: the connection layer in use (swapped by the one TLS
// step), its TLS state, the current stream's reader and the state bits.
type negotiator struct {
	m      *Manager
	client bool // we opened the connection: TLS client, initiating side

	// wmu guards conn and tls, which the negotiating goroutine swaps
	// while others write or describe the stream (incoming streams answer
	// dialback from other goroutines); inStream keeps more under it.
	wmu  sync.Mutex
	conn net.Conn
	tls  tls.ConnectionState // zero until the stream is secure

	r     *wire.Reader // the current stream's, set by the negotiating goroutine
	state atomic.Uint32
}

// is reports whether every bit of b is set.
func (n *negotiator) is(b streamState) bool { return streamState(n.state.Load())&b == b }

// set adds bits to the state and reports whether any of them was not set
// before.
func (n *negotiator) set(b streamState) (added bool) {
	return streamState(n.state.Or(uint32(b)))&b != b
}

// fits reports whether f may list, guard or negotiate on this stream.
func (n *negotiator) fits(f *feature) bool {
	s := streamState(n.state.Load())
	return s&f.necessary == f.necessary && s&f.prohibited == 0
}

// swap puts a new layer (TLS, or the sniffed plain connection) in place.
func (n *negotiator) swap(c net.Conn, state tls.ConnectionState) {
	n.wmu.Lock()
	n.conn = c
	n.tls = state
	n.wmu.Unlock()
}

// secure runs the TLS step (Manager.secure, handshake.go) on the current
// layer, as the client when we opened the connection, and swaps to the TLS
// layer. STARTTLS (after <proceed/>) and direct TLS (before any byte) both
// come here.
func (n *negotiator) secure(ctx context.Context, cfg *tls.Config) error {
	n.wmu.Lock()
	conn := n.conn
	n.wmu.Unlock()
	tc, state, err := n.m.secure(ctx, conn, cfg, n.client)
	if err != nil {
		return err
	}
	n.swap(tc, state)
	n.set(stateSecure)
	return nil
}

// appendFeatures appends the features of an incoming stream to b, in
// table order, and records on ep which it offered.
func (s *inStream) appendFeatures(b []byte, st *settings, ep *epoch) ([]byte, error) {
	feats := make([][]byte, 0, len(streamFeatures))
	for i := range streamFeatures {
		f := &streamFeatures[i]
		if f.list == nil || !s.fits(f) {
			continue
		}
		if b := f.list(s, st); b != nil {
			feats = append(feats, b)
			ep.listed |= f.id
		}
	}
	w := writerBuf(b)
	if err := wire.WriteFeatures(&w, feats...); err != nil {
		return nil, err
	}
	return w, nil
}

// dispatch gives an element of an incoming stream to the guards, then to
// the host (a stanza) or the entry of its namespace.
//
// It takes the element by pointer: an Element is thirteen words, and it is
// copied for the entries and the host's Stanza only, not on its way to
// deliver.
func (s *inStream) dispatch(st *settings, ep *epoch, e *wire.Element) (flow, error) {
	for _, f := range guarded {
		if !s.fits(f) {
			continue
		}
		if fl, err := f.guard(s, st, *e); err != nil || fl != flowOn {
			return fl, err
		}
	}
	if e.Name.Space == wire.NSServer && isStanzaName(e.Name.Local) {
		return flowOn, s.deliver(e)
	}
	for i := range streamFeatures {
		if f := &streamFeatures[i]; f.handle != nil && f.ns == e.Name.Space {
			return f.handle(s, st, ep, *e)
		}
	}
	return flowOn, s.unsupported(*e)
}

// unsupported ends the stream for an element nobody handles.
func (s *inStream) unsupported(e wire.Element) error {
	return s.fail(stream.UnsupportedStanzaType, fmt.Sprintf("<%s xmlns='%s'> is not handled here", domain.ClipText(e.Name.Local), domain.ClipText(e.Name.Space)))
}

func isStanzaName(n string) bool { return n == "message" || n == "presence" || n == "iq" }

// outStream is an outgoing connection while it negotiates: the pair it is
// for, the peer's header and features of the current stream, and what the
// entries found out.
type outStream struct {
	negotiator
	ctx context.Context
	st  *settings
	p   pair

	h     wire.Header    // the peer's header of the current stream
	feats []wire.Feature // the peer's features of the current stream
	ob    *dialback.Outbound
	auth  Auth // how p was authenticated, once stateAuthed

	wantAuth    bool // authenticate p; false: a stream for <db:verify> only
	tryExternal bool // try SASL EXTERNAL when the peer offers it
	sm          bool // the stream asks for XEP-0198, with its first write (sm.go)
	limits      peerLimits
	bidiAsked   bool // we sent <bidi/> (bidi.go)
	// held is what an entry wrote that needs no answer (<bidi/>): it
	// goes out with the next request (send), which the peer answers.
	held []byte
}

// send writes b to the stream, after what was held back, in one write.
func (o *outStream) send(b []byte) error {
	if len(o.held) > 0 {
		b = append(o.held, b...)
		o.held = nil
	}
	_, err := o.conn.Write(b)
	return err
}

// offered returns the peer's feature named name on the current stream, or
// nil.
func (o *outStream) offered(name xml.Name) *wire.Feature {
	for i := range o.feats {
		if o.feats[i].Name == name {
			return &o.feats[i]
		}
	}
	return nil
}

// negotiateOut negotiates an outgoing stream on conn: direct TLS first
// when the target is an _xmpps-server one, then a stream per restart, each
// entry of the table acting on the peer's features in turn. With auth
// false the stream serves for <db:verify> only; with external set, SASL
// EXTERNAL is used when the peer offers it and we have a certificate.
func (m *Manager) negotiateOut(ctx context.Context, st *settings, p pair, conn net.Conn, direct, auth, external bool) (*outConn, error) {
	o := &outStream{ctx: ctx, st: st, p: p, wantAuth: auth, tryExternal: external}
	o.m, o.client, o.conn = m, true, conn
	if direct {
		cfg, err := st.tls.DirectClientConfig(p.remote)
		if err != nil {
			return nil, atStep(StepTLS, err)
		}
		if err := o.secure(ctx, cfg); err != nil {
			return nil, atStep(StepTLS, fmt.Errorf("%w: direct TLS with %s: %w", ErrNegotiation, p.remote, err))
		}
		o.set(stateDirect)
	}
	for {
		if err := wire.WriteHeader(o.conn, wire.Header{From: p.local, To: p.remote}); err != nil {
			return nil, err
		}
		o.r = wire.NewReader(o.conn, m.limits)
		h, err := o.r.ReadHeader()
		if err != nil {
			return nil, fmt.Errorf("%w: stream header from %s: %w", ErrNegotiation, p.remote, err)
		}
		o.h = h
		if o.feats, err = readFeatures(o.r); err != nil {
			return nil, fmt.Errorf("%w: features from %s: %w", ErrNegotiation, p.remote, err)
		}
		o.ob = dialback.NewOutbound(st.keys, h.ID)
		fl, err := o.negotiateFeatures()
		switch {
		case err != nil:
			return nil, err
		case fl == flowRestart:
			continue
		}
		if len(o.held) > 0 {
			// Nothing followed what was held: it goes out alone.
			if err := o.send(nil); err != nil {
				return nil, err
			}
		}
		oc := &outConn{conn: o.conn, r: o.r, ob: o.ob, tls: o.tls, auth: o.auth, done: make(chan struct{}), writeTimeout: m.cfg.WriteTimeout,
			limits: o.limits,
			bidi:   o.bidiAsked, since: m.clock.Now(), sid: m.streamIDs.Add(1),
			p: p, dialback: o.offered(dialbackEntry.name) != nil || o.h.Dialback}
		oc.refs.Store(1) // its own link, or the verification it serves
		if o.sm {
			oc.sm.Store(newPendingSMOut(m))
			oc.enable = true
		}
		if oc.bidi && o.is(stateAuthed) {
			// The peer may send back for the reverse of our pair (bidi.go).
			oc.addReverse(p)
		}
		return oc, nil
	}
}

// negotiateFeatures runs the entries on the current stream's features, in
// table order, until one restarts the stream or says it is ready.
func (o *outStream) negotiateFeatures() (flow, error) {
	for i := range streamFeatures {
		f := &streamFeatures[i]
		if f.negotiate == nil || !o.fits(f) {
			continue
		}
		if fl, err := f.negotiate(o, o.offered(f.name)); err != nil || fl != flowOn {
			return fl, err
		}
	}
	if o.is(stateAuthed) {
		return flowDone, nil
	}
	// Dialback refuses a stream without it before we get here; a table
	// without an authenticating entry would end up here.
	wire.WriteClose(o.conn)
	return flowOn, atStep(StepAuth, fmt.Errorf("%w: %s: no authentication", ErrNegotiation, o.p.remote))
}

// readFeatures reads <stream:features>; a pre-1.0 peer that sends none is
// not supported (RFC 6120 requires version 1.0).
func readFeatures(r *wire.Reader) ([]wire.Feature, error) {
	e, err := next(r)
	if err != nil {
		return nil, err
	}
	return wire.ParseFeatures(e)
}
