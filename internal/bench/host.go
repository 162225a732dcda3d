package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/s2s"
)

// The host rows: one Manager answering pings, as a host embeds it, with
// the load generator of the raw rows on the other end of the link. The
// ping rows of ours have a Manager on both ends (the load generator's
// Send, its writes and its reads are a second ping path); the raw rows
// have a bare TLS echo on the far end. Here the load generator is the raw
// rows' client, the same code against both servers, so the ratio of the
// two is what the answering Manager costs over the echo: receive, parse
// the envelope, deliver, Send, write (issue 19's ping path).
//
// The load generator negotiates the stream by hand, as a remote server
// would: stream header, STARTTLS with TLS, bidi (XEP-0288, so that the
// Manager answers on the same connection, as the echo does), and dialback
// for a sending domain of its own, which the Manager verifies with side a
// (the sending zone's authoritative server, whose secret the pair knows).
// After that, the connection carries pings and their results only.

// hostDomain is the load generator's sending domain: one that no link of
// side a uses, so that the Manager answers on the load generator's stream
// and no other.
var hostDomain = senderDomain(1 << 20)

// hostPings runs n pings with window outstanding from the raw load
// generator to side b, and returns the time they took.
func (p *libPair) hostPings(ctx context.Context, tlsOn bool, n, window int) (time.Duration, error) {
	ping, res := pingFor(hostDomain)
	reply, err := s2s.ParseStanza(res)
	if err != nil {
		return 0, err
	}
	p.handle(false, func(s2s.Stanza) { p.b.SendStanza(ctx, reply) })
	conn, err := p.hostLink(ctx, tlsOn)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// A deadline in case the Manager answers somewhere else (or not at
	// all): the run fails instead of hanging. A minute, and 50 µs a ping
	// (20,000 round trips a second) for long runs.
	conn.SetDeadline(time.Now().Add(time.Minute + time.Duration(n)*50*time.Microsecond))
	// One round trip before the clock: the Manager's link back to the
	// load generator's domain is made on the first answer.
	if _, err := pingClient(conn, 1, 1, ping, reply.Raw); err != nil {
		return 0, fmt.Errorf("bench: first ping to the host: %w", err)
	}
	d, err := pingClient(conn, n, window, ping, reply.Raw)
	if err != nil {
		return 0, err
	}
	return d, p.checkBounces()
}

// hostLink opens an authenticated bidi stream from hostDomain to side b.
func (p *libPair) hostLink(ctx context.Context, tlsOn bool) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.lnB.Addr().String())
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := p.negotiateHost(conn, tlsOn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("bench: the load generator's stream: %w", err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// negotiateHost does the load generator's side of the negotiation on conn
// and returns the connection to write stanzas on (the TLS one with TLS).
func (p *libPair) negotiateHost(conn net.Conn, tlsOn bool) (net.Conn, error) {
	r, h, feats, err := openStream(conn)
	if err != nil {
		return nil, err
	}
	if tlsOn {
		if !offers(feats, "urn:ietf:params:xml:ns:xmpp-tls", "starttls") {
			return nil, errors.New("STARTTLS not offered")
		}
		if _, err := io.WriteString(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			return nil, err
		}
		if e, err := r.Next(); err != nil {
			return nil, err
		} else if e.Name.Local != "proceed" {
			return nil, fmt.Errorf("<%s/> instead of <proceed/>", e.Name.Local)
		}
		tc := tls.Client(conn, &tls.Config{
			ServerName:   receiverDomain,
			RootCAs:      p.ca.Pool(),
			Certificates: []tls.Certificate{*p.certA.Load()},
			MinVersion:   tls.VersionTLS13,
		})
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		conn = tc
		if r, h, feats, err = openStream(conn); err != nil {
			return nil, err
		}
	}
	if !offers(feats, "urn:xmpp:features:bidi", "bidi") {
		return nil, errors.New("bidi not offered")
	}
	key := dialback.Key(p.sharedA, receiverDomain, hostDomain, h.ID)
	if _, err := fmt.Fprintf(conn, "<bidi xmlns='urn:xmpp:bidi'/><db:result from='%s' to='%s'>%s</db:result>", hostDomain, receiverDomain, key); err != nil {
		return nil, err
	}
	e, err := r.Next()
	if err != nil {
		return nil, err
	}
	tr := e.TokenReader()
	tok, err := tr.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, fmt.Errorf("%T instead of the dialback answer", tok)
	}
	answer, err := dialback.Decode(tr, start)
	if err != nil {
		return nil, fmt.Errorf("the dialback answer: %w", err)
	}
	if res, ok := answer.(dialback.Result); !ok || res.Type != dialback.Valid {
		return nil, fmt.Errorf("dialback answered %+v", answer)
	}
	// The ping loop reads the connection itself: nothing may wait in the
	// stream reader's buffer (the Manager writes nothing unasked here).
	if n := r.Buffered(); n > 0 {
		return nil, fmt.Errorf("%d bytes after the dialback answer", n)
	}
	return conn, nil
}

// openStream sends our stream header on conn and reads the Manager's
// header and features.
func openStream(conn net.Conn) (*wire.Reader, wire.Header, []wire.Feature, error) {
	if err := wire.WriteHeader(conn, wire.Header{From: hostDomain, To: receiverDomain}); err != nil {
		return nil, wire.Header{}, nil, err
	}
	r := wire.NewReader(conn, wire.DefaultLimits)
	h, err := r.ReadHeader()
	if err != nil {
		return nil, h, nil, err
	}
	e, err := r.Next()
	if err != nil {
		return nil, h, nil, err
	}
	feats, err := wire.ParseFeatures(e)
	return r, h, feats, err
}

func offers(feats []wire.Feature, space, local string) bool {
	return slices.ContainsFunc(feats, func(f wire.Feature) bool {
		return f.Name == xml.Name{Space: space, Local: local}
	})
}

// pingClient is the load generator of the raw and host rows: it writes n
// copies of ping on conn, at most window unanswered, batched in a 16 KiB
// buffer that is flushed when the window is full or the buffer is, and
// reads n answers, each of which must be exactly result. It returns the
// time from the first write to the last answer.
func pingClient(conn net.Conn, n, window int, ping, result []byte) (time.Duration, error) {
	sem := make(chan struct{}, window)
	answered := make(chan error, 1)
	failed := make(chan struct{}) // closed when the reader gives up
	start := time.Now()
	go func() {
		r := bufio.NewReaderSize(conn, 16<<10)
		buf := make([]byte, len(result))
		for i := range n {
			if _, err := io.ReadFull(r, buf); err != nil {
				answered <- fmt.Errorf("answer %d: %w", i, err)
				close(failed)
				return
			}
			if !bytes.Equal(buf, result) {
				answered <- fmt.Errorf("answer %d is %q, want %q", i, buf, result)
				close(failed)
				return
			}
			<-sem
		}
		answered <- nil
	}()
	w := bufio.NewWriterSize(conn, 16<<10)
	for range n {
		select {
		case sem <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait.
			if err := w.Flush(); err != nil {
				return 0, err
			}
			select {
			case sem <- struct{}{}:
			case <-failed:
				return 0, <-answered
			}
		}
		if _, err := w.Write(ping); err != nil {
			return 0, err
		}
		if len(sem) < window && w.Buffered() >= w.Size()-len(ping) {
			if err := w.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := <-answered; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
