package s2s

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// The limits of the node under attack in these tests: small, so that going
// over them takes few bytes.
const (
	hostileMaxSize  = 1024
	hostileMaxDepth = 16
)

func withHostileLimits() nodeOpt {
	return func(c *Config) {
		c.S2S.MaxStanzaSize = hostileMaxSize
		c.MaxDepth = hostileMaxDepth
	}
}

// hostileTarget starts b.test, limited as above, with an authenticated
// stream from x.test already up: the bystander each test checks is
// unaffected by the attack.
func hostileTarget(t *testing.T, opts ...nodeOpt) (b *node, bystander *rawPeer) {
	t.Helper()
	b = authorityFor(t, []string{"x.test", "y.test"}, append([]nodeOpt{withHostileLimits()}, opts...)...)
	bystander = dialRaw(t, b, "x.test", "b.test")
	if typ := bystander.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("bystander dialback %q", typ)
	}
	return b, bystander
}

// checkBystander sends one stanza on the bystander's stream and sees it
// delivered.
func checkBystander(t *testing.T, b *node, p *rawPeer, id string) {
	t.Helper()
	p.t = t
	p.conn.SetDeadline(time.Now().Add(wait))
	p.write(fmt.Sprintf(`<message from='a@x.test' to='b@b.test' id='%s'/>`, id))
	if got := b.nextDelivered(); got.ID != id {
		t.Fatalf("bystander: delivered %q, want %q", got.ID, id)
	}
}

// dialHostile connects to n and sends header; it reads our header back
// unless header is empty.
func dialHostile(t *testing.T, n *node, header string) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", n.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wait))
	p := &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.DefaultLimits)}
	if header != "" {
		p.write(header)
		h, err := p.r.ReadHeader()
		if err != nil {
			t.Fatalf("our header: %v", err)
		}
		p.id = h.ID
	}
	return p
}

// expectClosed checks that the node closed the connection after its stream
// error: reading to the end succeeds (EOF) instead of timing out.
func (p *rawPeer) expectClosed() {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, p.conn); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		p.t.Fatalf("connection still open: %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// bareHeader strips the XML declaration off a stream header.
func bareHeader(h string) string {
	if i := strings.Index(h, "?>"); strings.HasPrefix(h, "<?xml") && i >= 0 {
		return h[i+2:]
	}
	return h
}

func nested(depth int) string {
	return strings.Repeat("<x>", depth) + strings.Repeat("</x>", depth)
}

// TestHostileInput sends what no server should, each on its own stream to
// b.test, and checks the exact stream error, that the connection is closed,
// that nothing was delivered, and that another link carries on.
func TestHostileInput(t *testing.T) {
	b, bystander := hostileTarget(t)
	hdr := headerString("y.test", "b.test")
	stanza := func(inner string) string {
		return "<message from='a@y.test' to='b@b.test'>" + inner + "</message>"
	}
	for i, tc := range []struct {
		header string // "" means hdr
		send   string
		eof    bool // half-close after send
		want   string
	}{
		// Not XML, broken XML.
		{send: "hello, server", want: "bad-format"},
		{send: "<message from='a@y.test' to='b@b.test'>hi</presence>", want: "not-well-formed"},
		{send: "<message from='a@y.test' to='b@b.test'><body>hi</message></stream:stream>", want: "not-well-formed"},
		// The peer went away mid-element: nobody is left to read an
		// error, the connection is just closed.
		{send: "<message from='a@y.test' to='b@b.test'><body>cut", eof: true, want: "eof"},
		{send: stanza("<body>\xff\xfe</body>"), want: "not-well-formed"},
		{send: stanza("<body>&undeclared;</body>"), want: "not-well-formed"},
		{send: "<message from='a@y.test' to='b@b.test' from='c@y.test'/>", want: "not-well-formed"},
		// Restricted XML (RFC 6120 §11.1).
		{send: "<!DOCTYPE stream [<!ENTITY boom 'boom'>]>", want: "restricted-xml"},
		{send: "<!ENTITY boom 'boom'>", want: "restricted-xml"},
		{send: "<?php echo 1; ?>", want: "restricted-xml"},
		{send: stanza("<!-- a comment -->"), want: "restricted-xml"},
		{send: stanza("<body><?pi data?></body>"), want: "restricted-xml"},
		{header: "<?xml version='1.0'?><!DOCTYPE x>" + hdr, want: "restricted-xml"},
		// Limits: depth, size of an attribute, a text node, a stanza.
		{send: stanza(nested(hostileMaxDepth)), want: "policy-violation"},
		{send: "<message from='a@y.test' to='b@b.test' x='" + strings.Repeat("a", hostileMaxSize) + "'/>", want: "policy-violation"},
		{send: stanza("<body>" + strings.Repeat("t", hostileMaxSize) + "</body>"), want: "policy-violation"},
		{header: "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' version='1.0' pad='" + strings.Repeat("p", hostileMaxSize) + "'>", want: "policy-violation"},
		// The stream header.
		{header: "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test'>", want: "unsupported-version"},
		{header: "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' version='0.9'>", want: "unsupported-version"},
		{header: "<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong' to='b.test' version='1.0'>", want: "invalid-namespace"},
		{header: "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='y.test' version='1.0'>", want: "improper-addressing"},
		{header: headerString("y.test", "nowhere.test"), want: "host-unknown"},
		{header: headerString("not a domain!", "b.test"), want: "invalid-from"},
		{send: bareHeader(hdr), want: "bad-format"},
		{send: hdr, want: "restricted-xml"}, // its <?xml?> is a processing instruction here
		// Before authentication, or not ours to say.
		{send: stanza(""), want: "not-authorized"},
		{send: "<iq from='y.test' to='b.test' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", want: "not-authorized"},
		{send: "<message to='b@b.test'/>", want: "improper-addressing"},
		{send: "<foo xmlns='urn:example'/>", want: "unsupported-stanza-type"},
		// Dialback names that are not domains end the stream before
		// anything is counted, stored, verified or logged whole
		// (TestDialbackLongNames has names of 200 KB).
		{send: "<db:result from='" + strings.Repeat("a", 300) + "' to='b.test'>k</db:result>", want: "improper-addressing"},
		{send: "<db:result from='y.test' to='" + strings.Repeat("a.", 126) + "bc'>k</db:result>", want: "improper-addressing"},
		{send: "<db:result from='y..test' to='b.test'>k</db:result>", want: "improper-addressing"},
		{send: "<db:result from='192.0.2.1' to='b.test'>k</db:result>", want: "improper-addressing"},
		{send: "<db:verify from='not a domain' to='b.test' id='i'>k</db:verify>", want: "improper-addressing"},
		{send: "<db:verify from='y.test' to='" + strings.Repeat("b", 300) + "' id='i'>k</db:verify>", want: "improper-addressing"},
		// Every <db:result> counts against MaxDialbackPerStream, repeats
		// too (these are refused at once: not for a local domain).
		{send: strings.Repeat("<db:result from='y.test' to='elsewhere.test'>k</db:result>", DefaultMaxDialbackPerStream+1), want: "policy-violation"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			h := tc.header
			if h == "" {
				h = hdr
			}
			p := dialHostile(t, b, "")
			p.write(h)
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatalf("our header: %v", err)
			}
			p.write(tc.send)
			if tc.eof {
				p.conn.(*net.TCPConn).CloseWrite()
			}
			if tc.want == "eof" {
				var err error
				for err == nil {
					_, err = p.r.Next() // the features, then the end
				}
				if !errors.Is(err, wire.ErrUnexpectedEOF) {
					t.Fatalf("read %v, want the connection closed", err)
				}
			} else if cond := p.streamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
			p.expectClosed()
			checkBystander(t, b, bystander, "after-"+strconv.Itoa(i))
		})
	}
}

// TestHostileAuthenticated attacks from a stream that authenticated y.test:
// what it may send is bounded all the same.
func TestHostileAuthenticated(t *testing.T) {
	b, bystander := hostileTarget(t)
	for i, tc := range []struct {
		send string
		want string
	}{
		{`<message from='a@y.test' to='b@b.test'><body>` + strings.Repeat("z", hostileMaxSize) + `</body></message>`, "policy-violation"},
		{`<message from='a@y.test' to='b@b.test'>` + nested(hostileMaxDepth) + `</message>`, "policy-violation"},
		{`<message from='a@x.test' to='b@b.test'/>`, "invalid-from"},
		{`<message from='a@y.test' to='b@elsewhere.test'/>`, "invalid-from"},
		{bareHeader(headerString("y.test", "b.test")), "bad-format"},
		{`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, ""},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p := dialRaw(t, b, "y.test", "b.test")
			if typ := p.result(rawSecret, "y.test", "b.test"); typ != dialback.Valid {
				t.Fatalf("dialback %q", typ)
			}
			// Right at the limit is fine.
			ok := fmt.Sprintf(`<message from='a@y.test' to='b@b.test' id='ok%d'>%s</message>`, i, nested(hostileMaxDepth-1))
			p.write(ok)
			if got := b.nextDelivered(); got.ID != "ok"+strconv.Itoa(i) {
				t.Fatalf("delivered %q", got.ID)
			}
			p.write(tc.send)
			// An empty want: STARTTLS is disabled here, so <failure/>
			// and a clean close.
			if cond := p.streamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
			p.expectClosed()
			select {
			case s := <-b.delivered:
				t.Fatalf("delivered %+v", s)
			default:
			}
			checkBystander(t, b, bystander, "after-"+strconv.Itoa(i))
		})
	}
}

// TestLimitsAdvertised checks the XEP-0478 feature on both the first
// stream and, with STARTTLS, not before it is needed.
func TestLimitsAdvertised(t *testing.T) {
	for i, tc := range []struct {
		opts []nodeOpt
		want string // "" for no <limits/>
	}{
		{nil, "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>1048576</max-bytes><idle-seconds>600</idle-seconds></limits>"},
		{[]nodeOpt{withHostileLimits()}, "<max-bytes>1024</max-bytes>"},
		{[]nodeOpt{withS2S(func(s *config.S2S) { s.MaxStanzaSize = 0 }), withConfig(func(c *Config) { c.IdleTimeout = -1 })}, ""},
		{[]nodeOpt{withS2S(func(s *config.S2S) { s.MaxStanzaSize = 0 })}, "<limits xmlns='urn:xmpp:stream-limits:0'><idle-seconds>600</idle-seconds></limits>"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b := newNode(t, listen(t), []string{"b.test"}, nil, tc.opts...)
			p := dialHostile(t, b, headerString("y.test", "b.test"))
			e, err := p.r.Next()
			if err != nil {
				t.Fatal(err)
			}
			has := bytes.Contains(e.Raw, []byte("stream-limits"))
			if tc.want == "" && has || tc.want != "" && !bytes.Contains(e.Raw, []byte(tc.want)) {
				t.Fatalf("features %s, want %q", e.Raw, tc.want)
			}
		})
	}
}

// TestTextBeforeHeader: bytes that are not XML where the stream header
// should be get not-well-formed at once, not after the negotiation timeout
// (set here far beyond the test's wait).
func TestTextBeforeHeader(t *testing.T) {
	for i, in := range []string{"hello\n", "<?xml version='1.0'?>hello"} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b := newNode(t, listen(t), []string{"b.test"}, nil, withConfig(func(c *Config) { c.NegotiationTimeout = time.Hour }))
			p := dialHostile(t, b, "")
			p.write(in)
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatalf("our header: %v", err)
			}
			if cond := p.streamError(); cond != "not-well-formed" {
				t.Fatalf("stream error %q", cond)
			}
			p.expectClosed()
		})
	}
}
