package s2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// STARTTLS (RFC 6120 §5), the stream feature: offered and negotiated
// before TLS only; what use_starttls allows is the starttls package's
// (Config.Offer, Incoming, Outgoing), the handshake is the one TLS step
// (negotiator.secure). Direct TLS needs no feature: directtls.go runs the
// same step before the first header.
var startTLSEntry = feature{
	id:         featStartTLS,
	name:       startTLSName,
	ns:         starttls.NS,
	prohibited: stateSecure,
	list:       func(s *inStream, st *settings) []byte { return st.tls.Feature() },
	guard:      (*inStream).startTLSGuard,
	handle:     (*inStream).startTLSHandle,
	negotiate:  (*outStream).startTLS,
}

var startTLSName = xml.Name{Space: starttls.NS, Local: "starttls"}

// startTLSGuard sees every element of a stream before TLS. The mode in
// force decides (Reload applies to each element): <starttls/> starts TLS,
// and when TLS is required nothing else is accepted before it.
func (s *inStream) startTLSGuard(st *settings, e wire.Element) (flow, error) {
	start, err := st.tls.Incoming(e.Name)
	switch {
	case errors.Is(err, starttls.ErrDisabled):
		s.write([]byte(starttls.Failure))
		s.closeStream(nil)
		return flowOn, err
	case err != nil:
		var se stream.Error
		if !errors.As(err, &se) {
			se = stream.PolicyViolation
		}
		s.closeStream(&se)
		return flowOn, err
	case start && s.pairs.Len() > 0:
		// RFC 6120 §5.3.1: TLS comes before authentication; pairs
		// authenticated in plaintext must not be carried into TLS.
		return flowOn, s.fail(stream.PolicyViolation, "STARTTLS after dialback")
	case start:
		return flowRestart, s.startTLS(st)
	}
	return flowOn, nil
}

// startTLSHandle takes what the guard let through: <starttls/> on a stream
// that is encrypted already, or another element of the namespace, which
// only the receiving server sends.
func (s *inStream) startTLSHandle(st *settings, ep *epoch, e wire.Element) (flow, error) {
	if e.Name == startTLSName && s.is(stateSecure) {
		return flowOn, s.fail(stream.PolicyViolation, "STARTTLS on a stream that is already encrypted")
	}
	return flowOn, s.unsupported(e)
}

// startTLS answers <starttls/> with <proceed/> and runs the handshake as
// the server.
func (s *inStream) startTLS(st *settings) error {
	if n := s.r.Buffered(); n > 0 {
		return s.fail(stream.PolicyViolation, "data after <starttls/> before TLS")
	}
	cfg, err := st.tls.ServerConfig(s.peer)
	if err != nil {
		s.write([]byte(starttls.Failure))
		s.closeStream(nil)
		return err
	}
	s.endEpoch()
	if err := s.write([]byte(starttls.Proceed)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.m.cfg.NegotiationTimeout)
	defer cancel()
	if err := s.secure(ctx, cfg); err != nil {
		s.dropConn()
		return fmt.Errorf("TLS handshake with %s: %w", s.conn.RemoteAddr(), err)
	}
	if st.tls.Mode == starttls.RequiredTrusted {
		// ServerConfig's handshake checked the chain, and this name when
		// the header had one.
		s.wmu.Lock()
		s.trusted, s.trustedBy = s.peer, st.tls
		s.wmu.Unlock()
	}
	return nil
}

// verifyPeer is st.tls.VerifyPeer on the stream's certificate, without the
// parts this connection's handshake already made: when the handshake ran
// under the same starttls.Config in required_trusted (so the same roots and
// mode), the chain is not checked again, only the name, and not even that
// for the name the handshake checked. Chain verification is the costliest
// step of an incoming stream after the handshake itself, and listing SASL
// EXTERNAL after TLS, a direct TLS header's 'from' and each dialback claim
// asked for it again. The chain is the one the handshake judged at its
// time, as for every stanza the connection carries after it.
func (s *inStream) verifyPeer(st *settings, name string) error {
	s.wmu.Lock()
	state, by, trusted := s.tls, s.trustedBy, s.trusted
	s.wmu.Unlock()
	switch {
	case by != st.tls || name == "":
		return st.tls.VerifyPeer(name, state)
	case name == trusted:
		return nil
	case len(state.PeerCertificates) == 0:
		return &starttls.VerifyError{Domain: name, Err: starttls.ErrNoPeerCertificate}
	}
	if err := starttls.VerifyName(state.PeerCertificates[0], name); err != nil {
		return &starttls.VerifyError{Domain: name, Err: err}
	}
	return nil
}

// startTLS decides from the peer's features whether to start TLS, per
// use_starttls, and runs the exchange (RFC 6120 §5.4.2) and the handshake.
func (o *outStream) startTLS(f *wire.Feature) (flow, error) {
	start, err := o.st.tls.Outgoing(f != nil, f != nil && f.Required)
	if err != nil {
		wire.WriteClose(o.conn)
		return flowOn, atStep(StepTLS, fmt.Errorf("%w: %s: %w", ErrNegotiation, o.p.remote, err))
	}
	if !start {
		return flowOn, nil
	}
	if err := o.startTLSExchange(); err != nil {
		return flowOn, atStep(StepTLS, err)
	}
	return flowRestart, nil // a new stream over TLS (RFC 6120 §5.4.3.3)
}

func (o *outStream) startTLSExchange() error {
	remote := o.p.remote
	if _, err := io.WriteString(o.conn, starttls.StartTLS); err != nil {
		return err
	}
	e, err := next(o.r)
	if err != nil {
		return fmt.Errorf("%w: waiting for <proceed/> from %s: %w", ErrNegotiation, remote, err)
	}
	switch e.Name {
	case xml.Name{Space: starttls.NS, Local: "proceed"}:
	case xml.Name{Space: starttls.NS, Local: "failure"}:
		return fmt.Errorf("%w: %s refused STARTTLS", ErrNegotiation, remote)
	default:
		return fmt.Errorf("%w: %s answered STARTTLS with <%s xmlns='%s'>", ErrNegotiation, remote, e.Name.Local, e.Name.Space)
	}
	if n := o.r.Buffered(); n > 0 {
		// Bytes after <proceed/> came before TLS: someone in the middle
		// is trying to feed us plaintext as if it were protected.
		return fmt.Errorf("%w: %s sent %d bytes of plaintext after <proceed/>", ErrNegotiation, remote, n)
	}
	cfg, err := o.st.tls.ClientConfig(remote)
	if err != nil {
		return err
	}
	if err := o.secure(o.ctx, cfg); err != nil {
		return fmt.Errorf("%w: TLS with %s: %w", ErrNegotiation, remote, err)
	}
	return nil
}
