package interop

import (
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// The tests of this file pin what Prosody 0.12's mod_s2s_bidi (XEP-0288)
// does on the wire, found by speaking to it directly rather than through
// our Manager: a hand-driven stream plays go.test's outgoing side, and our
// Manager, on the same secret, answers Prosody as go.test's authoritative
// and receiving server. What they establish, and what our bidi and
// piggybacking build on:
//
//   - Prosody lists <bidi xmlns='urn:xmpp:features:bidi'/> before TLS (when
//     it does not require TLS) and after it, and only on streams not yet
//     authenticated: never after SASL EXTERNAL succeeded.
//   - After our <bidi xmlns='urn:xmpp:bidi'/> and SASL EXTERNAL, Prosody
//     sends its own stanzas for go.test over that stream: one connection
//     carries both directions.
//   - After <bidi/> and dialback, Prosody verifies our key by sending
//     <db:verify> to go.test, never over the stream it came in on: it opens
//     a stream of its own to us for it (authenticated with dialback itself),
//     keeps that stream, and routes its stanzas for go.test there rather
//     than over our bidi stream.
//   - Prosody accepts a piggybacked <db:result> for a second domain it
//     hosts (target multiplexing) on the same stream, verifying the key
//     over a new stream from that domain, and then takes our stanzas to
//     that domain on it. An error it makes for such a stanza leaves as if
//     from its first domain: over the stream Prosody routes that domain's
//     stanzas on, with the second domain in 'from'. Only on a bidi stream,
//     where that pair is the reverse of the piggybacked one, is that
//     stanza authenticated.

// prosodyMore is Prosody's second domain in the bidi tests.
const prosodyMore = "chat.prosody.test"

// rawStream is one s2s stream driven by hand.
type rawStream struct {
	t    *testing.T
	conn net.Conn
	r    *wire.Reader
	id   string
	feat []wire.Feature
}

func dialRawStream(t *testing.T, port int) *rawStream {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return &rawStream{t: t, conn: c}
}

// open sends a stream header from → to and reads Prosody's header and
// features.
func (s *rawStream) open(from, to string) {
	s.t.Helper()
	if err := wire.WriteHeader(s.conn, wire.Header{From: from, To: to}); err != nil {
		s.t.Fatal(err)
	}
	s.r = wire.NewReader(s.conn, wire.DefaultLimits)
	h, err := s.r.ReadHeader()
	if err != nil {
		s.t.Fatalf("Prosody's stream header: %v", err)
	}
	s.id = h.ID
	e := s.next()
	if s.feat, err = wire.ParseFeatures(e); err != nil {
		s.t.Fatalf("Prosody's features: %v", err)
	}
}

func (s *rawStream) offers(space, local string) bool {
	for _, f := range s.feat {
		if f.Name == (xml.Name{Space: space, Local: local}) {
			return true
		}
	}
	return false
}

func (s *rawStream) featureNames() string {
	var names []string
	for _, f := range s.feat {
		names = append(names, "{"+f.Name.Space+"}"+f.Name.Local)
	}
	return strings.Join(names, " ")
}

func (s *rawStream) send(raw string) {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(raw)); err != nil {
		s.t.Fatalf("writing %s: %v", raw, err)
	}
}

func (s *rawStream) next() wire.Element {
	s.t.Helper()
	e, err := s.r.Next()
	if err != nil {
		s.t.Fatalf("reading from Prosody: %v", err)
	}
	return e
}

// startTLS runs STARTTLS as the initiating server, presenting cert when
// it is set.
func (s *rawStream) startTLS(serverName string, cert *tls.Certificate) {
	s.t.Helper()
	s.send(starttls.StartTLS)
	if e := s.next(); e.Name.Local != "proceed" {
		s.t.Fatalf("STARTTLS answered with %s", e.Raw)
	}
	cfg := &tls.Config{ServerName: serverName, RootCAs: testCA().Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tc := tls.Client(s.conn, cfg)
	if err := tc.Handshake(); err != nil {
		s.t.Fatalf("TLS with Prosody: %v", err)
	}
	s.conn = tc
}

// dialback asks Prosody to accept from → to with a key made by our
// Manager's secret, and returns Prosody's answer.
func (s *rawStream) dialback(o *ours, from, to string) wire.Element {
	s.t.Helper()
	key, err := o.keys.Key(to, from, s.id)
	if err != nil {
		s.t.Fatal(err)
	}
	s.send(fmt.Sprintf("<db:result from='%s' to='%s'>%s</db:result>", from, to, key))
	for {
		e := s.next()
		if e.Name == (xml.Name{Space: dialback.NS, Local: "result"}) && e.From == to {
			return e
		}
		s.t.Logf("before the dialback answer: %s", e.Raw)
	}
}

// elements reads the stream in the background from now on.
func (s *rawStream) elements() <-chan wire.Element {
	ch := make(chan wire.Element, 16)
	s.conn.SetDeadline(time.Time{})
	go func() {
		defer close(ch)
		for {
			e, err := s.r.Next()
			if err != nil {
				return
			}
			ch <- e
		}
	}()
	return ch
}

// pingArrives has Prosody's domain from ping go.test and reports whether
// the ping came over s (answered there) or reached our Manager.
func pingArrives(t *testing.T, o *ours, p *prosodyPeer, from string, s *rawStream, els <-chan wire.Element) (overRaw bool) {
	t.Helper()
	done := make(chan pingResult, 1)
	go func() {
		ctx, cancel := ctlContext()
		defer cancel()
		out, err := p.Ping(ctx, from, ourDomain)
		done <- pingResult{out, err}
	}()
	timeout := time.After(wait)
	for {
		select {
		case e, ok := <-els:
			if !ok {
				t.Fatal("Prosody closed the hand-driven stream")
			}
			if e.Name.Local == "iq" && e.Type == "get" {
				s.send(fmt.Sprintf("<iq type='result' id='%s' from='%s' to='%s'/>", attr(e.ID), attr(e.To), attr(e.From)))
				overRaw = true
				continue
			}
			t.Logf("on the hand-driven stream: %s", e.Raw)
		case got := <-o.delivered:
			if isPing(got) {
				t.Logf("the ping from %s reached our Manager: %s", from, got.Raw)
			}
		case r := <-done:
			if r.err != nil || !strings.Contains(r.out, "pong from "+ourDomain) {
				t.Fatalf("prosodyctl xmpp ping %s %s: %v\n%s", from, ourDomain, r.err, r.out)
			}
			return overRaw
		case <-timeout:
			t.Fatalf("the ping from %s got nowhere within %s", from, wait)
		}
	}
}

// bidiProsody starts our Manager, with use_starttls = mode, and a bidi
// Prosody hosting prosodyDomain and prosodyMore under one certificate
// from the test CA.
func bidiProsody(t *testing.T, mode string, c ProsodyConfig, tweaks ...func(*s2s.Config)) (*ours, *prosodyPeer) {
	t.Helper()
	ln := listenOurs(t)
	c.Domain = prosodyDomain
	c.MoreDomains = []string{prosodyMore}
	c.Bidi = true
	c.Routes = []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}}
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{prosodyDomain, prosodyMore}})
	if err != nil {
		t.Fatal(err)
	}
	c.CertPEM = leaf.PEM
	p := &prosodyPeer{Prosody: StartProsody(t, c), pings: make(chan pingResult, 1)}
	more := func(c *s2s.Config) {
		c.S2S.Address = append(c.S2S.Address, config.Address{Host: prosodyMore, IP: netip.MustParseAddr("127.0.0.1"), Port: p.Port})
	}
	return startOurs(t, ln, mode, prosodyDomain, p.Port, append([]func(*s2s.Config){more}, tweaks...)...), p
}

// TestProsodyBidiFactsDialback: <bidi/> and dialback on a hand-driven
// stream to Prosody, then a piggybacked second pair.
func TestProsodyBidiFactsDialback(t *testing.T) {
	o, p := bidiProsody(t, "optional", ProsodyConfig{TLS: "optional"})
	s := dialRawStream(t, p.Port)
	s.open(ourDomain, prosodyDomain)
	t.Logf("features before TLS: %s", s.featureNames())
	if !s.offers("urn:xmpp:features:bidi", "bidi") {
		t.Errorf("Prosody does not offer bidi before TLS (it does not require TLS)")
	}
	s.startTLS(prosodyDomain, nil)
	s.open(ourDomain, prosodyDomain)
	t.Logf("features after TLS: %s", s.featureNames())
	if !s.offers("urn:xmpp:features:bidi", "bidi") {
		t.Fatalf("Prosody does not offer bidi after TLS")
	}
	s.send("<bidi xmlns='urn:xmpp:bidi'/>")
	before := o.ln.accepted.Load()
	if ans := s.dialback(o, ourDomain, prosodyDomain); ans.Type != "valid" {
		t.Fatalf("Prosody answered our key with %s", ans.Raw)
	}
	opened := o.ln.accepted.Load() - before
	t.Logf("Prosody opened %d connections to us to verify our key", opened)
	if opened == 0 {
		t.Errorf("Prosody verified our key without a connection of its own: over the stream it came in on?")
	}
	waitLog(t, p, "the db:verify Prosody sent to go.test on a stream of its own", "Sending[s2sout]: <db:verify", "to='"+ourDomain+"'")

	// Target multiplexing: a second domain of Prosody's on the same stream.
	if ans := s.dialback(o, ourDomain, prosodyMore); ans.Type != "valid" {
		t.Fatalf("Prosody answered our piggybacked key with %s", ans.Raw)
	}
	els := s.elements()
	// Prosody takes the piggybacked pair's stanzas on this stream, but
	// sends the error it makes for one (no such user) as if from its
	// first domain: over its own stream from prosody.test to go.test,
	// where chat.prosody.test is not authenticated, and our Manager
	// ends that stream with invalid-from (RFC 6120 §4.9.3.9).
	s.send("<message type='chat' id='pb1' from='tester@" + ourDomain + "' to='nobody@" + prosodyMore + "'><body>piggybacked</body></message>")
	waitLog(t, p, "the piggybacked message", "Received[s2sin]: <message", "id='pb1'")
	line := waitLog(t, p, "Prosody's answer to the piggybacked message", "Sending[s2sout]: <message", "id='pb1'")
	t.Logf("Prosody answered on a stream of its own: %s", strings.TrimSpace(line))
	for timeout := time.After(wait); ; {
		select {
		case e := <-o.downs:
			if e.Link.Remote != prosodyDomain || e.Err == nil || !strings.Contains(e.Err.Error(), prosodyMore) {
				t.Logf("link down: %+v: %v", e.Link, e.Err)
				continue
			}
			t.Logf("our Manager refused it: %v", e.Err)
		case <-timeout:
			t.Fatalf("our Manager did not refuse %s's answer on %s's stream", prosodyMore, prosodyDomain)
		}
		break
	}

	// Where Prosody sends its own stanzas for go.test now.
	// Prosody registers a bidi stream as its route only when it has none
	// yet, and the verification gave it one: its stanzas never take our
	// bidi stream after dialback.
	if pingArrives(t, o, p, prosodyDomain, s, els) {
		t.Errorf("Prosody sent its ping over our bidi stream after dialback")
	}
	if pingArrives(t, o, p, prosodyMore, s, els) {
		t.Errorf("Prosody sent the ping of its piggybacked domain over our bidi stream")
	}
}

// TestProsodyBidiFactsExternal: <bidi/> and SASL EXTERNAL on a hand-driven
// stream; Prosody then sends its stanzas for go.test over it.
func TestProsodyBidiFactsExternal(t *testing.T) {
	o, p := bidiProsody(t, "optional", ProsodyConfig{TLS: "required", SecureAuth: true, SASLExternal: true, CAPEM: testCA().PEM()})
	s := dialRawStream(t, p.Port)
	s.open(ourDomain, prosodyDomain)
	t.Logf("features before TLS (TLS required): %s", s.featureNames())
	if s.offers("urn:xmpp:features:bidi", "bidi") {
		t.Errorf("Prosody offers bidi before TLS although it requires TLS")
	}
	leaf := leafFor(t, ourDomain)
	s.startTLS(prosodyDomain, &leaf.TLS)
	s.open(ourDomain, prosodyDomain)
	t.Logf("features after TLS: %s", s.featureNames())
	if !s.offers("urn:xmpp:features:bidi", "bidi") {
		t.Fatalf("Prosody does not offer bidi after TLS")
	}
	s.send("<bidi xmlns='urn:xmpp:bidi'/>")
	s.send(string(saslext.Auth(saslext.Name, nil, true)))
	if e := s.next(); e.Name.Local != "success" {
		t.Fatalf("SASL EXTERNAL answered with %s", e.Raw)
	}
	s.open(ourDomain, prosodyDomain)
	t.Logf("features after SASL: %q", s.featureNames())
	if s.offers("urn:xmpp:features:bidi", "bidi") {
		t.Errorf("Prosody offers bidi again after SASL")
	}
	els := s.elements()
	before := o.ln.accepted.Load()
	if !pingArrives(t, o, p, prosodyDomain, s, els) {
		t.Errorf("Prosody's ping did not come over our bidi stream")
	}
	if n := o.ln.accepted.Load() - before; n != 0 {
		t.Errorf("Prosody opened %d connections to us although our bidi stream was up", n)
	}
}
