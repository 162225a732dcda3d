package starttls

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"mellium.im/xmpp/stream"
)

// This file is a minimal RFC 6120 exchange over loopback TCP, driven only by
// Config's decisions: header -> features -> <starttls/> -> <proceed/> ->
// handshake -> verification -> one <db:result> over the result. The real
// stream code lives in the s2s Manager; this is just enough to prove that
// the decisions and tls.Configs interoperate.

const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsDialback = "jabber:server:dialback"
	header     = `<stream:stream xmlns='jabber:server' xmlns:stream='` + nsStream +
		`' xmlns:db='` + nsDialback + `' version='1.0'%s>`
	dbResult = `<db:result from='a.example.net' to='b.example.net'>key</db:result>`
)

// errPeerGone marks a side whose peer hung up before the exchange ended.
var errPeerGone = errors.New("peer closed the connection")

// outcome is how one side of a link ended.
type outcome struct {
	tls bool  // the link was encrypted
	err error // nil: the link carried the <db:result>
}

// peer is one side of a test link.
type peer struct {
	cfg    *Config
	from   string // the 'from' the initiating side puts in its header; "" for none
	rogue  bool   // initiating side sends <db:result> before TLS whatever its Config says
	claims []string
}

// nextStart returns the next start element, skipping character data.
func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("%w: %w", errPeerGone, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s, nil
		}
	}
}

// runLink connects out (initiating) to in (receiving) on loopback and
// returns both outcomes.
func runLink(t *testing.T, out, in peer, remote string) (o, i outcome) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan outcome, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- outcome{err: err}
			return
		}
		defer c.Close()
		// A guard against a hung test, not a timing assertion.
		c.SetDeadline(time.Now().Add(time.Minute))
		done <- receive(c, in)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	o = initiate(c, out, remote)
	c.Close()
	return o, <-done
}

// initiate is the initiating server's side.
func initiate(c net.Conn, p peer, remote string) outcome {
	from := ""
	if p.from != "" {
		from = fmt.Sprintf(" from='%s' to='%s'", p.from, remote)
	}
	if _, err := fmt.Fprintf(c, header, from); err != nil {
		return outcome{err: err}
	}
	d := xml.NewDecoder(c)
	if _, err := nextStart(d); err != nil { // their stream header
		return outcome{err: err}
	}
	features, err := nextStart(d)
	if err != nil {
		return outcome{err: err}
	}
	if features.Name != (xml.Name{Space: nsStream, Local: "features"}) {
		return outcome{err: fmt.Errorf("want features, got %v", features.Name)}
	}
	var offered, required bool
	for {
		tok, err := d.Token()
		if err != nil {
			return outcome{err: err}
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
		if s, ok := tok.(xml.StartElement); ok {
			if s.Name.Space == NS && s.Name.Local == "starttls" {
				offered = true
				if required, err = ParseFeature(d, s); err != nil {
					return outcome{err: err}
				}
			} else if err := d.Skip(); err != nil {
				return outcome{err: err}
			}
		}
	}
	start, err := p.cfg.Outgoing(offered, required)
	if p.rogue {
		start, err = false, nil
	}
	if err != nil {
		return outcome{err: err} // nothing sent; the caller closes
	}
	if !start {
		return exchange(c, d, false)
	}
	if _, err := io.WriteString(c, StartTLS); err != nil {
		return outcome{err: err}
	}
	reply, err := nextStart(d)
	if err != nil {
		return outcome{err: err}
	}
	if reply.Name != (xml.Name{Space: NS, Local: "proceed"}) {
		return outcome{err: fmt.Errorf("got <%s/> after <starttls/>", reply.Name.Local)}
	}
	cfg, err := p.cfg.ClientConfig(remote)
	if err != nil {
		return outcome{err: err}
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		return outcome{tls: true, err: err}
	}
	if _, err := fmt.Fprintf(tc, header, from); err != nil {
		return outcome{tls: true, err: err}
	}
	d = xml.NewDecoder(tc)
	if _, err := nextStart(d); err != nil {
		return outcome{tls: true, err: err}
	}
	return exchange(tc, d, true)
}

// exchange sends the <db:result> and waits for the receiver's <ok/>, which
// it sends only once it has accepted the link: with TLS 1.3 the client's
// handshake ends before the server has checked the client certificate.
func exchange(c io.Writer, d *xml.Decoder, encrypted bool) outcome {
	if _, err := io.WriteString(c, dbResult); err != nil {
		return outcome{tls: encrypted, err: err}
	}
	s, err := nextStart(d)
	if err != nil {
		return outcome{tls: encrypted, err: err}
	}
	if s.Name.Local != "ok" {
		return outcome{tls: encrypted, err: fmt.Errorf("got <%s/>", s.Name.Local)}
	}
	return outcome{tls: encrypted}
}

// receive is the receiving server's side.
func receive(c net.Conn, p peer) outcome {
	d := xml.NewDecoder(c)
	hdr, err := nextStart(d)
	if err != nil {
		return outcome{err: err}
	}
	var from string
	for _, a := range hdr.Attr {
		if a.Name.Local == "from" {
			from = a.Value
		}
	}
	feats := fmt.Sprintf(header, "") + "<stream:features>" + string(p.cfg.Feature()) + "</stream:features>"
	if _, err := io.WriteString(c, feats); err != nil {
		return outcome{err: err}
	}
	el, err := nextStart(d)
	if err != nil {
		return outcome{err: err}
	}
	start, err := p.cfg.Incoming(el.Name)
	switch {
	case errors.Is(err, ErrDisabled):
		io.WriteString(c, Failure+"</stream:stream>")
		return outcome{err: err}
	case err != nil:
		var se stream.Error
		if !errors.As(err, &se) {
			return outcome{err: fmt.Errorf("Incoming error %v carries no stream.Error", err)}
		}
		io.WriteString(c, "<stream:error><"+se.Err+" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		return outcome{err: err}
	case !start:
		return accept(c, d, el, false, p, from, nil)
	}
	if err := d.Skip(); err != nil {
		return outcome{err: err}
	}
	if _, err := io.WriteString(c, Proceed); err != nil {
		return outcome{err: err}
	}
	cfg, err := p.cfg.ServerConfig(from)
	if err != nil {
		return outcome{err: err}
	}
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		return outcome{tls: true, err: err}
	}
	d = xml.NewDecoder(tc)
	if _, err := nextStart(d); err != nil { // the restarted stream's header
		return outcome{tls: true, err: err}
	}
	if _, err := fmt.Fprintf(tc, header, ""); err != nil {
		return outcome{tls: true, err: err}
	}
	el, err = nextStart(d)
	if err != nil {
		return outcome{tls: true, err: err}
	}
	cs := tc.ConnectionState()
	return accept(tc, d, el, true, p, from, &cs)
}

// accept takes the <db:result> and, for RequiredTrusted, checks the domains
// the handshake could not (no 'from', or extra claimed domains).
func accept(c io.Writer, d *xml.Decoder, el xml.StartElement, encrypted bool, p peer, from string, cs *tls.ConnectionState) outcome {
	if el.Name != (xml.Name{Space: nsDialback, Local: "result"}) {
		return outcome{tls: encrypted, err: fmt.Errorf("got %v", el.Name)}
	}
	if err := d.Skip(); err != nil {
		return outcome{tls: encrypted, err: err}
	}
	if p.cfg.Mode == RequiredTrusted && cs != nil {
		for _, claim := range p.claims {
			if err := p.cfg.VerifyPeer(claim, *cs); err != nil {
				io.WriteString(c, "<stream:error><not-authorized/></stream:error>")
				return outcome{tls: encrypted, err: err}
			}
		}
	}
	if _, err := io.WriteString(c, "<ok/>"); err != nil {
		return outcome{tls: encrypted, err: err}
	}
	return outcome{tls: encrypted}
}
