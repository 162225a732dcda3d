package s2s

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// rawPeer is a remote server written by hand, for what our own Manager would
// never send: spoofed addresses, piggybacked domains, protocol violations.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *wire.Reader
	id   string
}

// dialRaw opens a stream from "from" to "to" on n and reads the header and
// features.
func dialRaw(t *testing.T, n *node, from, to string) *rawPeer {
	t.Helper()
	return dialRawWith(t, n, &net.Dialer{}, from, to)
}

func headerString(from, to string) string {
	var b writerBuf
	wire.WriteHeader(&b, wire.Header{From: from, To: to})
	return string(b)
}

func (p *rawPeer) write(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Fatal(err)
	}
}

// result asks for from→to with the key secret gives for this stream, and
// returns the answer's type.
func (p *rawPeer) result(secret, from, to string) dialback.Type {
	p.t.Helper()
	key := dialback.Key(secret, to, from, p.id)
	p.write(fmt.Sprintf("<db:result from='%s' to='%s'>%s</db:result>", from, to, key))
	for {
		e, err := p.r.Next()
		if err != nil {
			p.t.Fatalf("waiting for the answer: %v", err)
		}
		el, err := decodeDialback(e)
		if err != nil {
			p.t.Fatal(err)
		}
		if r, ok := el.(dialback.Result); ok && r.From == to && r.To == from {
			return r.Type
		}
	}
}

// streamError reads until the stream ends and returns its stream error
// condition, "" for a clean close.
func (p *rawPeer) streamError() string {
	p.t.Helper()
	for {
		_, err := p.r.Next()
		var pe *wire.PeerError
		switch {
		case errors.As(err, &pe):
			return pe.Err.Err
		case errors.Is(err, io.EOF):
			return ""
		case err != nil:
			p.t.Fatalf("reading: %v", err)
		}
	}
}

const rawSecret = "raw peer secret"

// authorityFor starts a node serving domains with rawSecret as its dialback
// secret, so that it confirms the keys a rawPeer presents for them, and a
// node b.test under test that knows where those domains are.
func authorityFor(t *testing.T, domains []string, bOpts ...nodeOpt) (b *node) {
	t.Helper()
	la, lb := listen(t), listen(t)
	peers := map[string]netip.AddrPort{}
	for _, d := range domains {
		peers[d] = addrOf(la)
	}
	newNode(t, la, domains, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	return newNode(t, lb, []string{"b.test"}, peers, bOpts...)
}

func TestIncomingSpoofedFrom(t *testing.T) {
	b := authorityFor(t, []string{"x.test"})
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	p.write(`<message from='a@x.test' to='b@b.test' id='ok'/>`)
	if got := b.nextDelivered(); got.ID != "ok" {
		t.Fatalf("delivered %+v", got)
	}
	p.write(`<message from='mallory@evil.test' to='b@b.test' id='spoof'/>`)
	if cond := p.streamError(); cond != "invalid-from" {
		t.Fatalf("stream error %q", cond)
	}
	select {
	case s := <-b.delivered:
		t.Fatalf("delivered a spoofed stanza %+v", s)
	default:
	}
}

func TestIncomingPiggybackedDeniedPair(t *testing.T) {
	b := authorityFor(t, []string{"x.test", "denied.test"}, withS2S(func(s *config.S2S) {
		s.HostPolicy = append(s.HostPolicy, config.HostPolicy{Host: "denied.test", Policy: "deny"})
	}))
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback x.test %q", typ)
	}
	if typ := p.result(rawSecret, "denied.test", "b.test"); typ != dialback.Failed {
		t.Fatalf("dialback denied.test %q", typ)
	}
	// The allowed pair still flows; the denied one is refused.
	p.write(`<message from='a@x.test' to='b@b.test' id='ok'/>`)
	if got := b.nextDelivered(); got.ID != "ok" {
		t.Fatalf("delivered %+v", got)
	}
	p.write(`<message from='a@denied.test' to='b@b.test' id='no'/>`)
	if cond := p.streamError(); cond != "invalid-from" {
		t.Fatalf("stream error %q", cond)
	}
	if len(b.delivered) != 0 {
		t.Fatal("delivered a stanza of the denied pair")
	}
}

func TestIncomingStreamErrors(t *testing.T) {
	b := authorityFor(t, []string{"x.test"}, withMode("required"))
	for i, tc := range []struct {
		header string
		send   string
		want   string
	}{
		{headerString("x.test", "unknown.test"), "", "host-unknown"},
		{headerString("x.test", ""), "", "improper-addressing"},
		{`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' version='1.0'>`, "", "invalid-namespace"},
		{`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' version='2.0'>`, "", "unsupported-version"},
		// required: dialback before TLS is refused (MongooseIM accepts it).
		{headerString("x.test", "b.test"), "<db:result from='x.test' to='b.test'>00</db:result>", "policy-violation"},
		{headerString("x.test", "b.test"), "<message from='a@x.test' to='b@b.test'/>", "policy-violation"},
		{headerString("x.test", "b.test"), "<!DOCTYPE foo>", "restricted-xml"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			conn, err := net.Dial("tcp", b.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			p := &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.DefaultLimits)}
			p.write(tc.header)
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatalf("our header: %v", err)
			}
			p.write(tc.send)
			if cond := p.streamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
		})
	}
}

func TestIncomingStanzaBeforeAuth(t *testing.T) {
	b := authorityFor(t, []string{"x.test"})
	p := dialRaw(t, b, "x.test", "b.test")
	p.write(`<message from='a@x.test' to='b@b.test'/>`)
	if cond := p.streamError(); cond != "not-authorized" {
		t.Fatalf("stream error %q", cond)
	}
}

func TestIncomingWrongKey(t *testing.T) {
	b := authorityFor(t, []string{"x.test"})
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result("not the secret", "x.test", "b.test"); typ != dialback.Invalid {
		t.Fatalf("dialback %q", typ)
	}
	if cond := p.streamError(); cond != "not-authorized" {
		t.Fatalf("stream error %q", cond)
	}
	if l := b.m.Links(); len(l) != 0 {
		t.Fatalf("links after a wrong key: %+v", l)
	}
}

// TestIncomingCanonicalDomains: a peer authenticated for a pair writes its
// stanzas' domains in another form of the same names — upper case, Unicode
// (faß.test, which UTS #46 transitional processing would read as
// fass.test), a trailing dot. The host gets the domains that were
// authenticated, in From, To and Raw alike.
func TestIncomingCanonicalDomains(t *testing.T) {
	const fass = "xn--fa-hia.test" // faß.test, not fass.test
	b := authorityFor(t, []string{fass})
	p := dialRaw(t, b, fass, "b.test")
	if typ := p.result(rawSecret, fass, "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	for i, tc := range []struct{ from, to, wantFrom, wantTo string }{
		{"a@" + fass + "/r", "b@b.test", "a@" + fass + "/r", "b@b.test"},
		{"a@faß.test/r", "b@B.Test", "a@" + fass + "/r", "b@b.test"},
		{"FAß.TEST", "b.test.", fass, "b.test"},
	} {
		id := strconv.Itoa(i)
		p.write(fmt.Sprintf(`<message from='%s' to='%s' id='%s'><body>hi</body></message>`, tc.from, tc.to, id))
		got := b.nextDelivered()
		if got.ID != id || got.From != tc.wantFrom || got.To != tc.wantTo {
			t.Fatalf("%d: delivered from %q to %q, want %q, %q", i, got.From, got.To, tc.wantFrom, tc.wantTo)
		}
		parsed, err := ParseStanza(got.Raw)
		if err != nil || parsed.From != tc.wantFrom || parsed.To != tc.wantTo || !strings.Contains(string(got.Raw), "<body>hi</body>") {
			t.Fatalf("%d: Raw %s (%v)", i, got.Raw, err)
		}
	}
}
