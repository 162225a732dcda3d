package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"mellium.im/xmlstream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// We negotiate s2s streams ourselves instead of with mellium's Session:
// its header writer cannot declare xmlns:db (dialback elements then fail on
// strict peers), its StartTLS feature cannot be optional, and its Serve
// stamps one 'from' per session, which rules out dialback piggybacking.

// outConn is an outgoing stream after negotiation: the connection (TLS or
// not), its reader, and the dialback state that matches answers to requests.
type outConn struct {
	conn net.Conn
	r    *wire.Reader
	ob   *dialback.Outbound
	tls  tls.ConnectionState // zero when not encrypted
	auth Auth

	done chan struct{} // closed when the reader stops
	err  error         // why the reader stopped; set before done closes

	closeOnce sync.Once
}

func (oc *outConn) close(why error) {
	oc.closeOnce.Do(func() {
		if why == nil {
			why = net.ErrClosed
		}
		oc.ob.Close(why)
		oc.conn.Close()
	})
}

// Errors of outgoing negotiation; each wraps the details.
var (
	// ErrNegotiation is wrapped when a peer's stream does not follow the
	// protocol: a bad header or features, a failed STARTTLS exchange, a
	// downgrade attempt, no dialback.
	ErrNegotiation = errors.New("s2s: stream negotiation failed")
	// ErrAuth is wrapped when the peer refused our dialback key or answered
	// with a dialback error.
	ErrAuth = errors.New("s2s: authentication failed")
	// ErrPeerClosed is the reason of a link the peer closed with
	// </stream:stream>: a clean end, not a failure.
	// It matches io.EOF too.
	ErrPeerClosed = fmt.Errorf("s2s: the peer closed the stream: %w", io.EOF)
)

// dialOut resolves and connects to the remote domain of p, negotiates the
// stream (TLS per use_starttls) and, when auth is set, authenticates p with
// dialback. Without auth the stream serves for <db:verify> only. Each step
// has its own bound, and targets are tried in turn (dial.go).
func (m *Manager) dialOut(ctx context.Context, st *settings, p pair, auth bool) (*outConn, error) {
	// Each failure is wrapped with the step it happened at (StepError), so
	// that bounce reasons, LinkFailed events and metrics name it in the
	// words the diagnosis uses.
	targets, err := st.resolver.Resolve(ctx, p.remote)
	if err != nil {
		return nil, atStep(StepDNS, err)
	}
	if targets, err = usableTargets(st, p.remote, targets); err != nil {
		return nil, atStep(stepOr(err, StepDNS), err)
	}
	return m.dialTargets(ctx, st, p, targets, auth)
}

// negotiateOut negotiates an outgoing stream on conn. With external set,
// SASL EXTERNAL is used when the peer offers it and we have a certificate.
func (m *Manager) negotiateOut(ctx context.Context, st *settings, p pair, conn net.Conn, direct, auth, external bool) (*outConn, error) {
	secured, saslDone := false, false
	var state tls.ConnectionState
	if direct {
		cfg, err := st.tls.DirectClientConfig(p.remote)
		if err != nil {
			return nil, atStep(StepTLS, err)
		}
		if conn, state, err = m.secure(ctx, conn, cfg, true); err != nil {
			return nil, atStep(StepTLS, fmt.Errorf("%w: direct TLS with %s: %w", ErrNegotiation, p.remote, err))
		}
		secured = true
	}
	for {
		if err := wire.WriteHeader(conn, wire.Header{From: p.local, To: p.remote}); err != nil {
			return nil, err
		}
		r := wire.NewReader(conn, m.limits)
		h, err := r.ReadHeader()
		if err != nil {
			return nil, fmt.Errorf("%w: stream header from %s: %w", ErrNegotiation, p.remote, err)
		}
		feats, err := readFeatures(r)
		if err != nil {
			return nil, fmt.Errorf("%w: features from %s: %w", ErrNegotiation, p.remote, err)
		}
		var offered, required, dialbackFeature bool
		for _, f := range feats {
			switch f.Name {
			case xml.Name{Space: starttls.NS, Local: "starttls"}:
				offered, required = true, f.Required
			case xml.Name{Space: dialback.FeatureNS, Local: "dialback"}:
				dialbackFeature = true
			}
		}
		if !secured {
			start, err := st.tls.Outgoing(offered, required)
			if err != nil {
				wire.WriteClose(conn)
				return nil, atStep(StepTLS, fmt.Errorf("%w: %s: %w", ErrNegotiation, p.remote, err))
			}
			if start {
				if conn, state, err = m.startTLS(ctx, st, conn, r, p.remote); err != nil {
					return nil, atStep(StepTLS, err)
				}
				secured = true
				continue // a new stream over TLS (RFC 6120 §5.4.3.3)
			}
		}
		if saslDone {
			oc := &outConn{conn: conn, r: r, ob: dialback.NewOutbound(st.keys, h.ID), done: make(chan struct{}),
				tls: state, auth: AuthSASLExternal}
			return oc, nil
		}
		if external && secured && offersExternal(feats) && canPresentCert(st) {
			if err := externalOut(conn, r, p, dialbackFeature || h.Dialback); err != nil {
				wire.WriteClose(conn)
				return nil, atStep(StepAuth, err)
			}
			saslDone = true
			continue // a new stream, authenticated (RFC 6120 §6.4.6)
		}
		if !dialbackFeature && !h.Dialback {
			wire.WriteClose(conn)
			return nil, atStep(StepAuth, fmt.Errorf("%w: %s offers no Server Dialback", ErrNegotiation, p.remote))
		}
		oc := &outConn{conn: conn, r: r, ob: dialback.NewOutbound(st.keys, h.ID), done: make(chan struct{})}
		if secured {
			oc.tls = state
		}
		if !auth {
			return oc, nil
		}
		if err := oc.authenticate(p); err != nil {
			oc.close(err)
			return nil, atStep(StepAuth, err)
		}
		oc.auth = AuthDialback
		return oc, nil
	}
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

// startTLS runs the STARTTLS exchange (RFC 6120 §5.4.2) and the handshake.
func (m *Manager) startTLS(ctx context.Context, st *settings, conn net.Conn, r *wire.Reader, remote string) (net.Conn, tls.ConnectionState, error) {
	fail := func(err error) (net.Conn, tls.ConnectionState, error) { return nil, tls.ConnectionState{}, err }
	if _, err := io.WriteString(conn, starttls.StartTLS); err != nil {
		return fail(err)
	}
	e, err := next(r)
	if err != nil {
		return fail(fmt.Errorf("%w: waiting for <proceed/> from %s: %w", ErrNegotiation, remote, err))
	}
	switch e.Name {
	case xml.Name{Space: starttls.NS, Local: "proceed"}:
	case xml.Name{Space: starttls.NS, Local: "failure"}:
		return fail(fmt.Errorf("%w: %s refused STARTTLS", ErrNegotiation, remote))
	default:
		return fail(fmt.Errorf("%w: %s answered STARTTLS with <%s xmlns='%s'>", ErrNegotiation, remote, e.Name.Local, e.Name.Space))
	}
	if n := r.Buffered(); n > 0 {
		// Bytes after <proceed/> came before TLS: someone in the middle
		// is trying to feed us plaintext as if it were protected.
		return fail(fmt.Errorf("%w: %s sent %d bytes of plaintext after <proceed/>", ErrNegotiation, remote, n))
	}
	cfg, err := st.tls.ClientConfig(remote)
	if err != nil {
		return fail(err)
	}
	tc, state, err := m.secure(ctx, conn, cfg, true)
	if err != nil {
		return fail(fmt.Errorf("%w: TLS with %s: %w", ErrNegotiation, remote, err))
	}
	return tc, state, nil
}

// authenticate asks the peer to accept p with dialback and waits for the
// answer (XEP-0220 §2.1).
func (oc *outConn) authenticate(p pair) error {
	req, err := oc.ob.Request(p.local, p.remote)
	if err != nil {
		return err
	}
	if _, err := oc.conn.Write(encode(req)); err != nil {
		return err
	}
	for {
		e, err := next(oc.r)
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
			if _, err := oc.ob.Resolve(el); err != nil {
				if errors.Is(err, dialback.ErrUnsolicited) {
					continue
				}
				return fmt.Errorf("%w: %s refused %s: %w", ErrAuth, p.remote, p.local, err)
			}
			return nil
		case dialback.Verify:
			// An answer to a verification we asked on another stream
			// cannot arrive here; anything else is dropped.
			oc.ob.Deliver(el)
		}
	}
}

// readLoop reads an up outgoing stream: dialback answers to our
// verification requests, the peer's close or its stream error. Peers do not
// send stanzas over a stream they did not open (RFC 6120 §4.1 without
// XEP-0288); such stanzas are logged and dropped.
func (oc *outConn) readLoop(m *Manager) {
	var err error
	for {
		var e wire.Element
		e, err = next(oc.r)
		if err != nil {
			break
		}
		if e.Name.Space != dialback.NS {
			m.log.Warn("s2s: dropped an element on an outgoing stream", "name", e.Name.Local, "ns", e.Name.Space, "from", e.From, "to", e.To)
			continue
		}
		el, derr := decodeDialback(e)
		if derr != nil {
			m.log.Warn("s2s: malformed dialback element on an outgoing stream", "err", derr)
			continue
		}
		switch el := el.(type) {
		case dialback.Verify:
			if derr := oc.ob.Deliver(el); derr != nil {
				m.log.Warn("s2s: dropped a dialback answer", "err", derr)
			}
		case dialback.Result:
			if _, derr := oc.ob.Resolve(el); derr != nil {
				m.log.Warn("s2s: dropped a dialback answer", "err", derr)
			}
		}
	}
	if errors.Is(err, io.EOF) {
		// The peer closed its side; close ours (RFC 6120 §4.4).
		wire.WriteClose(oc.conn)
		err = ErrPeerClosed
	}
	oc.err = err
	close(oc.done)
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

// encode serialises an element that writes itself as tokens.
func encode(el interface {
	WriteXML(xmlstream.TokenWriter) (int, error)
}) []byte {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	el.WriteXML(enc)
	enc.Flush()
	return buf.Bytes()
}
