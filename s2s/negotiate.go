package s2s

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
)

// We negotiate s2s streams ourselves instead of with mellium's Session:
// its header writer cannot declare xmlns:db (dialback elements then fail on
// strict peers), its StartTLS feature cannot be optional, and its Serve
// stamps one 'from' per session, which rules out dialback piggybacking.

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
