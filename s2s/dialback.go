package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// Server Dialback (XEP-0220, XEP-0185), the stream feature. As the
// receiving server we answer <db:result> requests after asking the
// authoritative server (authority.go, within the bounds of
// verification.go) and answer <db:verify> as the authoritative server; as
// the initiating server we ask the peer to accept our pair and wait for
// the answer. Keys and the element codec are package dialback's.
var dialbackEntry = feature{
	id:        featDialback,
	name:      xml.Name{Space: dialback.FeatureNS, Local: "dialback"},
	ns:        dialback.NS,
	list:      (*inStream).listDialback,
	handle:    (*inStream).handleDialback,
	negotiate: (*outStream).dialback,
}

// dialbackFeature is our <dialback/> feature: with <errors/>, since we
// understand dialback errors (XEP-0220 §2.4).
var dialbackFeature = encode(dialback.Feature{Errors: true})

// listDialback offers dialback unless TLS is required and not done yet: a
// request before TLS would be refused.
func (s *inStream) listDialback(st *settings) []byte {
	if _, required := st.tls.Offer(); required && !s.is(stateSecure) {
		return nil
	}
	return dialbackFeature
}

// handleDialback takes a dialback element: a request to verify, or a
// verification to answer as the authoritative server.
func (s *inStream) handleDialback(st *settings, ep *epoch, e wire.Element) (flow, error) {
	if !s.inbOK {
		s.inb, s.inbOK = s.inbound(), true
	}
	return flowOn, s.dialback(s.inb, ep, e)
}

// dialback authenticates o's pair with dialback, as the initiating server,
// unless the stream is for <db:verify> only (then it is ready as it is). A
// peer that offers no dialback, in features or header, cannot authenticate
// us: the stream ends.
func (o *outStream) dialback(f *wire.Feature) (flow, error) {
	if o.is(stateAuthed) {
		// SASL did it. (Not a prohibited bit: the receiving side keeps
		// offering dialback after SASL, for piggybacked pairs.)
		return flowOn, nil
	}
	if f == nil && !o.h.Dialback {
		wire.WriteClose(o.conn)
		return flowOn, atStep(StepAuth, fmt.Errorf("%w: %s offers no Server Dialback", ErrNegotiation, o.p.remote))
	}
	if !o.wantAuth {
		return flowDone, nil
	}
	if err := o.authenticate(); err != nil {
		o.ob.Close(err)
		o.conn.Close()
		return flowOn, atStep(StepAuth, err)
	}
	o.auth = AuthDialback
	o.set(stateAuthed)
	return flowOn, nil
}

// inbound is the dialback configuration of this stream. It reads the
// settings at each request, so that a Reload applies to live streams: a
// rotated secret stops confirming keys made with the old one at once, and
// a stricter TLS mode or trust pool judges the next request.
func (s *inStream) inbound() dialback.Inbound {
	m := s.m
	return dialback.Inbound{
		Keys:    liveKeys{m},
		IsLocal: m.cfg.IsLocal,
		Allow: func(remote string) error {
			st := m.settings()
			if d := st.policy.Decide(s.ctx, remote); !d.Allowed() {
				return fmt.Errorf("%w: %w: %s", stanza.Error{Type: stanza.Cancel, Condition: stanza.PolicyViolation,
					Text: map[string]string{"": fmt.Sprintf("federation with %s is not allowed", remote)}}, ErrDenied, d)
			}
			if st.tls.Mode == starttls.RequiredTrusted {
				// The handshake checked the header's 'from' at most; every
				// domain claimed on the stream must be named by the
				// certificate (piggybacked ones included).
				if err := s.verifyPeer(st, remote); err != nil {
					return fmt.Errorf("%w: %w", stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized,
						Text: map[string]string{"": err.Error()}}, err)
				}
			}
			return nil
		},
		Authority: authority{m: m, src: s.ip},
		Timeout:   m.cfg.NegotiationTimeout,
	}
}

// liveKeys is the KeySource of the settings in force. It is a
// KeyChecker too, so that a source that accepts more than the key it makes
// now (a Keyring in its grace period) keeps doing so.
type liveKeys struct{ m *Manager }

func (k liveKeys) Key(receiving, originating, streamID string) (string, error) {
	return k.m.settings().keys.Key(receiving, originating, streamID)
}

func (k liveKeys) CheckKey(key, receiving, originating, streamID string) (bool, error) {
	return dialback.Check(k.m.settings().keys, key, receiving, originating, streamID)
}

// pendingKey is a <db:result> request as its verification is shared: the
// pair (normalised) and the key.
type pendingKey struct {
	p   pair
	key string
}

// checkNames validates the 'from' and 'to' of a dialback element and
// returns them normalised. It comes before anything about the element is
// counted, stored or logged: the names are the peer's, as long as a stanza.
func checkNames(from, to string) (pair, error) {
	f, err := domain.Normalize(from)
	if err != nil {
		return pair{}, fmt.Errorf("dialback 'from': %w", err)
	}
	t, err := domain.Normalize(to)
	if err != nil {
		return pair{}, fmt.Errorf("dialback 'to': %w", err)
	}
	return pair{local: t, remote: f}, nil
}

func (s *inStream) dialback(in dialback.Inbound, ep *epoch, e wire.Element) error {
	el, err := decodeDialback(e)
	if err != nil {
		return s.fail(stream.BadFormat, domain.ClipText(err.Error()))
	}
	switch el := el.(type) {
	case dialback.Verify:
		p, err := checkNames(el.From, el.To)
		if err != nil {
			return s.fail(stream.ImproperAddressing, err.Error())
		}
		ans, err := in.Answer(el)
		// Per-element lines are Debug: a peer may send as many
		// <db:verify> as it likes, and a line each at Info or Warn
		// would let any stream flood the host's logs.
		if ans == (dialback.Verify{}) {
			s.m.log.Debug("s2s: dropped a dialback element", "from", p.remote, "to", p.local, "err", err)
			return nil
		}
		if err != nil {
			s.m.log.Debug("s2s: answered a key verification negatively", "from", p.remote, "to", p.local, "err", err)
		}
		return s.write(encode(ans))
	case dialback.Result:
		p, err := checkNames(el.From, el.To)
		if err != nil {
			return s.fail(stream.ImproperAddressing, err.Error())
		}
		if len(el.Key) > maxDialbackKey {
			return s.fail(stream.PolicyViolation, fmt.Sprintf("a dialback key longer than %d bytes", maxDialbackKey))
		}
		if !s.countDialback() {
			return s.fail(stream.PolicyViolation, fmt.Sprintf("more than %d dialback requests on one stream", s.m.cfg.MaxDialbackPerStream))
		}
		if el.Type != dialback.Request {
			// A peer using XEP-0288, or spoofing an answer: XEP-0220
			// §3.1 says to drop it.
			s.m.log.Warn("s2s: dropped an unsolicited dialback result", "from", p.remote, "to", p.local, "type", domain.Clip(string(el.Type)))
			return nil
		}
		k := pendingKey{p, el.Key}
		if !s.startPending(k) {
			return nil // a repeat: answered with the request it repeats
		}
		// The verification asks another server: do not hold up the stream.
		s.m.spawnAlways(func() { s.handleResult(in, ep, k, el) })
	}
	return nil
}

// startPending registers a verification for k; false when one is running,
// which then answers this request too.
func (s *inStream) startPending(k pendingKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.pending[k]; ok {
		s.pending[k] = n + 1
		return false
	}
	if s.pending == nil {
		s.pending = make(map[pendingKey]int)
	}
	s.pending[k] = 0
	return true
}

// endPending forgets the verification of k and returns how many requests
// its answer is for.
func (s *inStream) endPending(k pendingKey) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.pending[k]
	delete(s.pending, k)
	return 1 + n
}

func (s *inStream) handleResult(in dialback.Inbound, ep *epoch, k pendingKey, r dialback.Result) {
	m := s.m
	// The verification works on a copy of the stream's pairs; the pair
	// joins the stream's own set only if its stream is still the one it
	// was asked on (commit).
	pairs := s.pairs.Clone()
	ans, err := in.Handle(ep.ctx, ep.id, pairs, r)
	n := s.endPending(k)
	if !s.commit(ep, err == nil, k.p) {
		m.log.Info("s2s: dropped a dialback answer: its stream restarted or ended", "from", k.p.remote, "to", k.p.local)
		return
	}
	if err == nil {
		// Register the link before the peer learns it may send, so that
		// its first stanzas are counted and LinkUp comes before them.
		if !s.pairUp(k.p.local, k.p.remote) {
			return
		}
		if m.cfg.answering != nil {
			m.cfg.answering(k.p)
		}
	}
	// One answer per request, repeats included, as the peer may count them.
	var route *pair
	if err == nil {
		route = &k.p
	}
	werr := s.writeIn(ep, bytes.Repeat(encode(ans), n), route)
	if err == nil {
		if werr == nil {
			s.offerBack()
		}
		return
	}
	if werr != nil {
		return
	}
	m.log.Warn("s2s: refused an incoming dialback request", "from", k.p.remote, "to", k.p.local, "requests", n, "err", err)
	m.observe(Event{Kind: AuthFailed, Link: linkInfo(Incoming, k.p, nil, AuthDialback, time.Time{}, 0, 0, 0), Err: err,
		Setup: m.clock.Now().Sub(s.began)})
	if ans.Type == dialback.Invalid {
		// XEP-0220 §2.2.1: an invalid key ends the stream.
		se := withText(stream.NotAuthorized, fmt.Sprintf("dialback key for %s not valid", k.p.remote))
		s.closeStream(&se)
	}
}

// commit reports whether ep is still the stream in progress and, when
// valid, adds p to the stream's authenticated pairs in the same step, so
// that no restart can come between the check and the pair. A stream with a
// pair refuses STARTTLS, so the pair stays with this stream.
func (s *inStream) commit(ep *epoch, valid bool, p pair) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ep != ep || s.closed {
		return false
	}
	if valid {
		s.pairs.Add(p.remote, p.local) // normalised already: cannot fail
	}
	return true
}

// writeIn writes b if ep is still the stream in progress. With route set
// (the valid answer for that pair), on a bidi stream, it makes the stream a
// route for the pair's reverse in the same hold of the write lock: our
// links write back over the stream under that lock, so none of their
// stanzas can reach the peer before the answer it waits for (a peer of
// ours fails its negotiation on a stanza before the answer), and the route
// is there by the time the peer has read it.
func (s *inStream) writeIn(ep *epoch, b []byte, route *pair) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed || s.ep != ep {
		return net.ErrClosed
	}
	if route != nil && s.bidi && (s.bidiSecure || !s.is(stateSecure)) {
		s.m.indexBidi(s, *route)
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	_, err := s.conn.Write(b)
	return err
}

// authenticate asks the peer to accept p with dialback and waits for the
// answer (XEP-0220 §2.1).
func (o *outStream) authenticate() error {
	p := o.p
	req, err := o.ob.Request(p.local, p.remote)
	if err != nil {
		return err
	}
	if err := o.send(encode(req)); err != nil {
		return err
	}
	for {
		e, err := next(o.r)
		if err != nil {
			return fmt.Errorf("%w: waiting for the dialback answer from %s: %w", ErrNegotiation, p.remote, err)
		}
		if e.Name.Space != dialback.NS {
			return fmt.Errorf("%w: %s sent <%s xmlns='%s'> before answering dialback", ErrNegotiation, p.remote, e.Name.Local, e.Name.Space)
		}
		el, err := decodeDialback(e)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNegotiation, p.remote, err)
		}
		switch el := el.(type) {
		case dialback.Result:
			if _, err := o.ob.Resolve(el); err != nil {
				if errors.Is(err, dialback.ErrUnsolicited) {
					continue
				}
				return fmt.Errorf("%w: %s refused %s: %w", ErrAuth, p.remote, p.local, err)
			}
			return nil
		case dialback.Verify:
			// An answer to a verification we asked on another stream
			// cannot arrive here; anything else is dropped.
			o.ob.Deliver(el)
		}
	}
}

// decodeDialback decodes a dialback element read from a stream.
func decodeDialback(e wire.Element) (dialback.Element, error) {
	tr := e.TokenReader()
	tok, err := tr.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, fmt.Errorf("%w: no start element", dialback.ErrMalformed)
	}
	return dialback.Decode(tr, start)
}
