package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// ErrDirectTLSDisabled is the reason a direct TLS connection is refused in
// either direction while use_starttls is "false": that mode means no TLS at
// all, so a listener served by ServeTLS closes what it accepts and outgoing
// links skip _xmpps-server targets (a domain with nothing else is then
// unreachable: remote-server-not-found).
var ErrDirectTLSDisabled = errors.New(`s2s: direct TLS is not used with use_starttls = "false"`)

// ServeTLS is Serve for a XEP-0368 direct TLS listener (the port an
// _xmpps-server._tcp SRV record points at): each connection starts with the
// TLS handshake, ALPN "xmpp-server", and the stream then opens inside TLS
// without STARTTLS. use_starttls keeps its meaning: "required_trusted"
// requires a peer certificate that chains to the trusted roots and names
// every domain the stream claims (the header's 'from', checked when it
// arrives, and each dialback domain); "optional" and "required" accept any
// certificate or none, dialback authenticating the peer; "false" refuses
// direct TLS (ErrDirectTLSDisabled), checked per connection so that Reload
// applies.
//
// The handshake runs in the connection's own goroutine, bounded by
// NegotiationTimeout, so a slow client holds up nobody else. ServeTLS
// returns as Serve does.
func (m *Manager) ServeTLS(ln net.Listener) error {
	return m.Serve(&markListener{Listener: ln, mode: directTLS})
}

// ServeMixed is Serve and ServeTLS on one listener: it looks at the first
// byte each connection sends, a TLS handshake record (0x16) starting direct
// TLS and anything else a plaintext stream (which may then use STARTTLS).
// It lets one port serve both kinds of peer, as Prosody's and ejabberd's
// do not; the SRV records then point both services at it.
func (m *Manager) ServeMixed(ln net.Listener) error {
	return m.Serve(&markListener{Listener: ln, mode: sniffTLS})
}

type listenMode uint8

const (
	directTLS listenMode = iota + 1 // TLS first
	sniffTLS                        // look at the first byte
)

// markListener tags accepted connections so that the stream goroutine knows
// to start with TLS; the accept loop, listener bookkeeping and shutdown
// stay Serve's own.
type markListener struct {
	net.Listener
	mode listenMode
}

func (l *markListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &markedConn{Conn: c, mode: l.mode}, nil
}

type markedConn struct {
	net.Conn
	mode listenMode
}

// SyscallConn is the accepted connection's, if it has one: a parked reader
// waits on its socket (park.go).
func (c *markedConn) SyscallConn() (syscall.RawConn, error) { return syscallConn(c.Conn) }

// tlsRecordHandshake is the content type of the record a ClientHello comes in
// (RFC 8446 §5.1); no XML stream can start with it.
const tlsRecordHandshake = 0x16

// prefixConn gives back a byte read ahead before the rest of the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// SyscallConn is the connection's once the byte read ahead is given back:
// until then a wait on the socket would miss it.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	if len(c.prefix) > 0 {
		return nil, errNoSocket
	}
	return syscallConn(c.Conn)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// acceptDirect runs the server side of direct TLS when the connection came
// from ServeTLS or ServeMixed (the one TLS step, negotiator.secure); the
// stream is then secure before its first header.
func (s *inStream) acceptDirect(st *settings) error {
	mc, ok := s.conn.(*markedConn)
	if !ok {
		return nil
	}
	raw := mc.Conn
	if mc.mode == sniffTLS {
		var b [1]byte
		if _, err := io.ReadFull(raw, b[:]); err != nil {
			s.dropConn()
			return fmt.Errorf("reading the first byte from %s: %w", raw.RemoteAddr(), err)
		}
		raw = &prefixConn{Conn: raw, prefix: b[:]}
		s.swap(raw, tls.ConnectionState{})
		if b[0] != tlsRecordHandshake {
			return nil
		}
	} else {
		s.swap(raw, tls.ConnectionState{})
	}
	if st.tls.Mode == starttls.False {
		s.dropConn()
		return ErrDirectTLSDisabled
	}
	cfg, err := st.tls.DirectServerConfig()
	if err != nil {
		s.dropConn()
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.m.cfg.NegotiationTimeout)
	defer cancel()
	if err := s.secure(ctx, cfg); err != nil {
		s.dropConn()
		return fmt.Errorf("direct TLS handshake with %s: %w", raw.RemoteAddr(), err)
	}
	if st.tls.Mode == starttls.RequiredTrusted {
		// DirectServerConfig's handshake checked the chain, and no name:
		// checkDirectPeer checks the header's 'from' when it comes.
		s.wmu.Lock()
		s.trusted, s.trustedBy = "", st.tls
		s.wmu.Unlock()
	}
	s.set(stateDirect)
	return nil
}

// dropConn closes the connection without a word: before or during a TLS
// handshake nothing XMPP can be said.
func (s *inStream) dropConn() {
	s.wmu.Lock()
	s.closed = true
	s.conn.Close()
	s.wmu.Unlock()
}

// checkDirectPeer applies required_trusted to the 'from' of a direct TLS
// stream: the handshake checked the chain only, since the peer's name was
// not known yet; with STARTTLS the header came first and the handshake
// checked the name too. A header without 'from' leaves the check to each
// domain dialback or SASL claims. A proven 'from' is recorded as the
// STARTTLS handshake's is, so that listing SASL EXTERNAL, the restarted
// stream and a dialback request from the same domain do not check it
// again (verifyPeer); the chain is not checked again at all when the
// settings are still the handshake's.
func (s *inStream) checkDirectPeer(st *settings, h wire.Header) error {
	if !s.is(stateDirect) || st.tls.Mode != starttls.RequiredTrusted || s.peer == "" {
		return nil
	}
	if err := s.verifyPeer(st, s.peer); err != nil {
		s.replyHeader(h)
		s.fail(stream.NotAuthorized, fmt.Sprintf("the certificate does not prove %s", s.peer))
		return err
	}
	s.wmu.Lock()
	if s.trustedBy == st.tls {
		s.trusted = s.peer
	}
	s.wmu.Unlock()
	return nil
}

// replyHeader sends our stream header before a stream error, which RFC 6120
// §4.9.1.2 requires when the error answers the peer's header.
func (s *inStream) replyHeader(h wire.Header) {
	s.write(headerBytes(wire.Header{From: h.To, To: h.From, ID: newStreamID()}))
}

// usableTargets drops direct TLS targets when use_starttls is "false".
func usableTargets(st *settings, remote string, targets []resolver.Target) ([]resolver.Target, error) {
	if st.tls.Mode != starttls.False {
		return targets, nil
	}
	kept := targets[:0:0]
	for _, t := range targets {
		if !t.Direct {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("%w: %s: %w", ErrNegotiation, remote, ErrDirectTLSDisabled)
	}
	return kept, nil
}
