package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// SASL EXTERNAL for s2s (XEP-0178 on RFC 6120 §6). The certificate proves
// the initiating domain, so no dialback round trip to its authoritative
// server is needed; policy applies exactly as for dialback.

// ErrExternalRefused is wrapped (with ErrAuth) when the peer answered our
// SASL EXTERNAL <auth/> with <failure/>. The link falls back to dialback on a
// new stream when the peer offered dialback; the error is what remains when
// it did not.
var ErrExternalRefused = errors.New("s2s: SASL EXTERNAL refused")

// externalRefused is a refusal of our EXTERNAL attempt, with what the
// fallback needs to know.
type externalRefused struct {
	condition, text string
	dialback        bool // the peer offered dialback on that stream
}

func (e *externalRefused) Error() string {
	msg := fmt.Sprintf("%v (%s)", ErrExternalRefused, e.condition)
	if e.text != "" {
		msg += ": " + e.text
	}
	return msg
}

func (e *externalRefused) Unwrap() []error { return []error{ErrExternalRefused, ErrAuth} }

var (
	saslMechanismsName = xml.Name{Space: saslext.NS, Local: "mechanisms"}
	saslAuthName       = xml.Name{Space: saslext.NS, Local: "auth"}
)

// saslExternalEntry is the entry: offered and tried on an encrypted
// stream that SASL has not authenticated yet. As the initiating server we
// try it before dialback when the peer lists EXTERNAL and we have a
// certificate; a refusal falls back to dialback on a new stream (dial.go).
var saslExternalEntry = feature{
	id:         featSASLExternal,
	name:       saslMechanismsName,
	ns:         saslext.NS,
	necessary:  stateSecure,
	prohibited: stateSASL,
	list:       (*inStream).listExternal,
	handle:     (*inStream).external,
	negotiate:  (*outStream).external,
}

// externalFeature is our <mechanisms/> feature, EXTERNAL alone.
var externalFeature = saslext.Feature(saslext.Name)

// offersExternal reports whether the features list EXTERNAL. An empty
// <mechanisms/> (ejabberd) or a malformed one means no SASL.
func offersExternal(feats []wire.Feature) bool {
	for _, f := range feats {
		if f.Name != saslMechanismsName {
			continue
		}
		d := xml.NewDecoder(bytes.NewReader(f.Raw))
		tok, err := d.Token()
		if err != nil {
			return false
		}
		start, _ := tok.(xml.StartElement)
		mechs, err := saslext.ParseMechanisms(d, start)
		if err != nil {
			return false
		}
		for _, m := range mechs {
			if m == saslext.Name {
				return true
			}
		}
	}
	return false
}

// canPresentCert reports whether we have a certificate to authenticate
// with; without one EXTERNAL cannot succeed, so it is not tried.
func canPresentCert(st *settings) bool {
	if st.tls.Cert == nil {
		return false
	}
	c, err := st.tls.Cert.Certificate()
	return err == nil && c != nil && len(c.Certificate) > 0
}

// external runs EXTERNAL as the initiating server when the peer offers it
// and we can present a certificate. After <success/> the stream restarts,
// authenticated (RFC 6120 §6.4.6).
func (o *outStream) external(f *wire.Feature) (flow, error) {
	if !o.tryExternal || f == nil || !offersExternal([]wire.Feature{*f}) || !canPresentCert(o.st) {
		return flowOn, nil
	}
	dialbackOffered := o.offered(dialbackEntry.name) != nil || o.h.Dialback
	if err := externalOut(o.send, o.r, o.p, dialbackOffered); err != nil {
		wire.WriteClose(o.conn)
		return flowOn, atStep(StepAuth, err)
	}
	o.auth = AuthSASLExternal
	o.set(stateSASL | stateAuthed)
	return flowRestart, nil
}

// externalOut runs the EXTERNAL exchange, writing with write and reading
// r. nil means <success/>. dialbackOffered goes into a refusal, for the
// fallback.
func externalOut(write func([]byte) error, r *wire.Reader, p pair, dialbackOffered bool) error {
	// The empty authzid: the receiving server takes our identity from the
	// stream's 'from' (XEP-0178 §3); sending it again buys nothing.
	_, resp, err := sasl.NewClient(saslext.Mechanism).Step(nil)
	if err != nil {
		return err
	}
	if err := write(saslext.Auth(saslext.Name, resp, true)); err != nil {
		return err
	}
	for challenged := false; ; challenged = true {
		e, err := next(r)
		if err != nil {
			return fmt.Errorf("%w: waiting for the SASL answer from %s: %w", ErrNegotiation, p.remote, err)
		}
		tr := e.TokenReader()
		tok, err := tr.Token()
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrNegotiation, p.remote, err)
		}
		start, _ := tok.(xml.StartElement)
		switch start.Name {
		case xml.Name{Space: saslext.NS, Local: "success"}:
			if r.Buffered() > 0 {
				// RFC 6120 §6.4.6: the peer must wait for our new
				// header; anything more belongs to the old stream.
				return fmt.Errorf("%w: %s sent data after <success/>", ErrNegotiation, p.remote)
			}
			return nil
		case xml.Name{Space: saslext.NS, Local: "failure"}:
			cond, text, err := saslext.ParseFailure(tr, start)
			if err != nil {
				cond = "malformed failure"
			}
			return &externalRefused{condition: cond, text: text, dialback: dialbackOffered}
		case xml.Name{Space: saslext.NS, Local: "challenge"}:
			// A server that ignores initial responses asks again; our
			// answer is the same empty authzid. Once is enough.
			if challenged {
				return fmt.Errorf("%w: %s sent a second SASL challenge", ErrNegotiation, p.remote)
			}
			if err := write(saslext.Response(resp)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %s answered SASL with <%s xmlns='%s'>", ErrNegotiation, p.remote, start.Name.Local, start.Name.Space)
		}
	}
}

// listExternal offers EXTERNAL when it is enabled and the peer's
// certificate chains to our roots and names the stream's 'from', the RFC
// 6125 checks required_trusted makes. A peer that could not succeed is not
// offered the mechanism, so that it goes straight to dialback.
func (s *inStream) listExternal(st *settings) []byte {
	if s.m.cfg.DisableSASLExternal || s.peer == "" {
		return nil
	}
	if err := s.verifyPeer(st, s.peer); err != nil {
		s.m.log.Debug("s2s: not offering SASL EXTERNAL", "peer", s.peer, "err", err)
		return nil
	}
	return externalFeature
}

// external answers an <auth/> as the receiving server. restart is true after
// <success/>: the peer opens a new stream, which the caller reads.
func (s *inStream) external(st *settings, ep *epoch, e wire.Element) (flow, error) {
	restart, err := s.externalAuth(st, ep, e)
	if restart {
		return flowRestart, err
	}
	return flowOn, err
}

func (s *inStream) externalAuth(st *settings, ep *epoch, e wire.Element) (restart bool, err error) {
	m := s.m
	r := s.r
	if e.Name != saslAuthName {
		if e.Name == (xml.Name{Space: saslext.NS, Local: "abort"}) {
			return false, s.write(saslext.Failure(saslext.Aborted, ""))
		}
		return false, s.fail(stream.UnsupportedStanzaType, fmt.Sprintf("<%s/> outside a SASL exchange", domain.ClipText(e.Name.Local)))
	}
	tr := e.TokenReader()
	tok, err := tr.Token()
	if err != nil {
		return false, s.fail(stream.BadFormat, domain.ClipText(err.Error()))
	}
	mech, resp, initial, err := saslext.ParseAuth(tr, tok.(xml.StartElement))
	refuse := func(cond, text string, cause error) (bool, error) {
		m.log.Info("s2s: refused SASL EXTERNAL", "peer", s.peer, "local", s.local, "condition", cond, "err", cause)
		m.observe(Event{Kind: AuthFailed, Link: linkInfo(Incoming, pair{s.local, s.peer}, &s.tls, AuthSASLExternal, time.Time{}, 0, 0, 0), Err: cause,
			Setup: m.clock.Now().Sub(s.began)})
		return false, s.write(saslext.Failure(cond, text))
	}
	switch {
	case err != nil:
		return refuse(saslext.MalformedRequest, "", err)
	case mech != saslext.Name || ep.listed&featSASLExternal == 0:
		return refuse(saslext.InvalidMechanism, "", fmt.Errorf("%w: mechanism %s not offered", ErrAuth, domain.Clip(mech)))
	}
	// One attempt per stream: the peer's certificate will not change, and a
	// refused peer should fall back to dialback.
	ep.listed &^= featSASLExternal
	if !initial {
		if err := s.write(saslext.Challenge(nil)); err != nil {
			return false, err
		}
		e, err := next(r)
		if err != nil {
			return false, s.readFailed(err)
		}
		if e.Name == (xml.Name{Space: saslext.NS, Local: "abort"}) {
			return refuse(saslext.Aborted, "", fmt.Errorf("%w: the peer aborted", ErrAuth))
		}
		tr := e.TokenReader()
		tok, err := tr.Token()
		start, _ := tok.(xml.StartElement)
		if err != nil || start.Name != (xml.Name{Space: saslext.NS, Local: "response"}) {
			return refuse(saslext.MalformedRequest, "", fmt.Errorf("%w: <%s/> instead of a SASL response", ErrAuth, domain.ClipText(e.Name.Local)))
		}
		if resp, err = saslext.ParseData(tr, start); err != nil {
			return refuse(saslext.MalformedRequest, "", err)
		}
	}
	var authzErr error
	server := sasl.NewServer(saslext.Mechanism, func(n *sasl.Negotiator) bool {
		_, _, authzid := n.Credentials()
		if len(authzid) == 0 {
			return true
		}
		// XEP-0178 §3: an authzid, if sent, must be the domain the
		// stream is from.
		d, err := domain.Normalize(string(authzid))
		if err != nil || d != s.peer {
			authzErr = fmt.Errorf("%w: authzid %s is not the stream's 'from' %s", ErrAuth, domain.Clip(string(authzid)), s.peer)
			return false
		}
		return true
	})
	if _, _, err := server.Step(resp); err != nil {
		if authzErr != nil {
			return refuse(saslext.InvalidAuthzid, "", authzErr)
		}
		return refuse(saslext.NotAuthorized, "", fmt.Errorf("%w: %w", ErrAuth, err))
	}
	if d := st.policy.Decide(s.ctx, s.peer); !d.Allowed() {
		return refuse(saslext.NotAuthorized, fmt.Sprintf("federation with %s is not allowed", s.peer),
			fmt.Errorf("%w: %s", ErrDenied, d))
	}
	if err := s.pairs.Add(s.peer, s.local); err != nil {
		return refuse(saslext.NotAuthorized, "", err)
	}
	// What was asked before <success/> is not answered after it, and
	// nothing of ours goes on this stream any more: a link of ours that
	// finds the pair below (bidi) waits for the stream after <success/>
	// (a stanza before <success/> would break the peer's negotiation).
	s.endEpoch()
	// Registered before <success/>, as dialback does, so that the first
	// stanzas of the peer find their link.
	if !s.pairUpAuth(s.local, s.peer, AuthSASLExternal) {
		return false, net.ErrClosed
	}
	s.routeBack(s.local, s.peer)
	s.set(stateSASL)
	if err := s.write([]byte(saslext.Success)); err != nil {
		return false, err
	}
	return true, nil
}

// checkRestartPeer refuses a stream restarted after SASL that claims
// another origin than the one SASL authenticated.
func (s *inStream) checkRestartPeer(prev string, h wire.Header) error {
	if !s.is(stateSASL) || s.peer == prev {
		return nil
	}
	s.replyHeader(h)
	return s.fail(stream.InvalidFrom, "the stream restarted after SASL from another domain")
}
