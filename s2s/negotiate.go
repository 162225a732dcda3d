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
