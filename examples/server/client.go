package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/s2s"
)

// Bounds of a client connection.
const (
	// clientQueue is how many stanzas may wait for one client; more are
	// answered with resource-constraint.
	clientQueue = 256
	// clientNegotiation bounds TLS, SASL and binding together.
	clientNegotiation = 30 * time.Second
	// clientWrite bounds one write to a client.
	clientWrite = 30 * time.Second
)

// client is one bound client session. full, bare and resource are set by
// bind and never change; available and presence are guarded by the
// router's lock.
type client struct {
	full     jid.JID
	bare     string
	resource string

	available bool
	presence  s2s.Stanza // the last presence broadcast

	out     chan s2s.Stanza
	closing chan struct{}
	// mu orders enqueue and stop: once stop returned, nothing more enters
	// out, so the writer's final drain answers everything.
	mu     sync.Mutex
	closed bool
}

func newClient() *client {
	return &client{out: make(chan s2s.Stanza, clientQueue), closing: make(chan struct{})}
}

// enqueue hands st to the session's writer; false when the queue is full or
// the session ended.
func (c *client) enqueue(st s2s.Stanza) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	select {
	case c.out <- st:
		return true
	default:
		return false
	}
}

func (c *client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.closing)
	}
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// serveClient runs one client connection: negotiation with mellium's
// server-side session (STARTTLS, SASL, resource binding), then the stanzas
// in both directions until either side ends the stream.
func (s *server) serveClient(raw net.Conn) {
	defer s.wg.Done()
	defer raw.Close()
	log := s.log.With("client", raw.RemoteAddr().String())
	// Negotiation is bounded the same way: a client cannot send without end
	// before it authenticates either.
	conn := newLimitConn(raw, s.maxStanza)

	who := &authState{}
	c := newClient()
	var local string
	negotiate := xmpp.NewNegotiator(func(sess *xmpp.Session, _ *xmpp.StreamConfig) xmpp.StreamConfig {
		if sess == nil {
			return xmpp.StreamConfig{}
		}
		d, err := s2s.NormalizeDomain(sess.LocalAddr().Domainpart())
		if err != nil || !s.r.domains[d] {
			// mellium's negotiator has no way to refuse a stream
			// header, and with no feature to offer it waits for the
			// client anyway: a feature that fails to list itself
			// ends negotiation, and host-unknown is sent below.
			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{{
				Name: xml.Name{Space: "urn:xmpp:federation:example:refuse", Local: "refuse"},
				List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
					return true, stream.HostUnknown
				},
			}}}
		}
		local = d
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.StartTLS(s.tls),
			xmpp.SASLServer(plainOK(s.r.accounts, d, who), mechanisms(s.r.accounts, d, who)...),
			xmpp.BindCustom(func(_ jid.JID, resource string) (jid.JID, error) {
				user := who.get()
				if user == "" {
					return jid.JID{}, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}
				}
				return s.r.bind(user, resource, c)
			}),
		}}
	})
	ctx, cancel := context.WithTimeout(s.ctx, clientNegotiation)
	sess, err := xmpp.ReceiveSession(ctx, conn, 0, negotiate)
	cancel()
	if local == "" && errors.Is(err, stream.HostUnknown) {
		log.Info("client asked for a domain we do not serve", "to", sess.LocalAddr().String())
		// The session's encoder holds the half-written feature list, so
		// the error goes to the connection directly after the header
		// mellium sent.
		rawStreamError(conn, stream.HostUnknown)
		return
	}
	if err != nil {
		log.Info("client negotiation failed", "err", err)
		if c.bare != "" {
			s.r.unbind(c)
		}
		return
	}
	if c.bare == "" {
		s.streamError(sess, stream.NotAuthorized)
		return
	}
	log = log.With("jid", c.full.String())
	log.Info("client online")
	if !s.track(c, sess) {
		s.r.unbind(c)
		s.streamError(sess, stream.SystemShutdown)
		return
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.writeClient(sess, c, conn, log)
	}()
	err = s.readClient(sess, c, conn)
	s.r.unbind(c)
	c.stop()
	<-done
	var se stream.Error
	switch {
	case errors.As(err, &se):
		s.streamError(sess, se)
	default:
		sess.Close()
	}
	s.untrack(c)
	log.Info("client offline", "reason", err)
}

// readClient reads stanzas until the client closes its stream or breaks
// the protocol; a stream error to send is returned as a stream.Error.
func (s *server) readClient(sess *xmpp.Session, c *client, conn *limitConn) error {
	r := sess.TokenReader()
	defer r.Close()
	conn.reset()
	for {
		tok, err := r.Token()
		if errors.Is(err, errReadLimit) {
			return stream.PolicyViolation
		}
		if err != nil {
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			conn.reset() // whitespace keepalives
			continue
		}
		switch start.Name.Local {
		case "message", "presence", "iq":
		default:
			return stream.UnsupportedStanzaType
		}
		// RFC 6120 §8.1.2.1: the server stamps the sender's full JID,
		// whatever the client wrote.
		attrs := start.Attr[:0:0]
		for _, a := range start.Attr {
			if a.Name.Space == "" && a.Name.Local == "from" {
				continue
			}
			attrs = append(attrs, a)
		}
		start.Attr = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: c.full.String()})
		st, err := s2s.ReadStanza(r, &start, s.maxStanza)
		if errors.Is(err, s2s.ErrStanzaTooLarge) || errors.Is(err, errReadLimit) {
			return stream.PolicyViolation
		}
		if err != nil {
			return stream.BadFormat
		}
		conn.reset()
		s.r.fromClient(c, st)
	}
}

// writeClient writes queued stanzas to the client until the session ends;
// a write that fails or takes longer than clientWrite ends it.
func (s *server) writeClient(sess *xmpp.Session, c *client, conn net.Conn, log interface{ Info(string, ...any) }) {
	for {
		select {
		case st := <-c.out:
			ctx, cancel := context.WithTimeout(context.Background(), clientWrite)
			err := sess.Send(ctx, st.TokenReader())
			cancel()
			if err != nil {
				log.Info("writing to client failed", "err", err)
				conn.Close()
				c.stop()
				s.drain(c)
				return
			}
		case <-c.closing:
			s.drain(c)
			return
		}
	}
}

// drain answers what still waited for a session that ended.
func (s *server) drain(c *client) {
	for {
		select {
		case st := <-c.out:
			s.r.reply(st, stanza.ServiceUnavailable, "the recipient went offline")
		default:
			return
		}
	}
}

// streamError sends a stream error and closes the stream.
func (s *server) streamError(sess *xmpp.Session, e stream.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), clientWrite)
	defer cancel()
	sess.Send(ctx, e.TokenReader())
	sess.Close()
}

// rawStreamError writes a stream error and the end of the stream to conn.
func rawStreamError(conn net.Conn, e stream.Error) {
	conn.SetWriteDeadline(time.Now().Add(clientWrite))
	enc := xml.NewEncoder(conn)
	if _, err := e.WriteXML(enc); err == nil && enc.Flush() == nil {
		io.WriteString(conn, "</stream:stream>")
	}
}

// clientTLS is the TLS configuration of client connections.
func clientTLS(cert func() (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert()
		},
	}
}
