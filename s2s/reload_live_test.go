package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// reload applies f to n's current options.
func (n *node) reload(f func(*config.S2S)) {
	n.t.Helper()
	s := n.m.settings().s2s.Clone()
	f(&s)
	if err := n.m.Reload(s); err != nil {
		n.t.Fatalf("Reload: %v", err)
	}
}

// denyBoth makes n's policy deny host, and waits for its two links with
// host, one each way, to go down for it: ErrDenied, and an error text
// containing text.
func (n *node) denyBoth(host, text string) {
	n.t.Helper()
	n.reload(func(s *config.S2S) { s.HostPolicy = []config.HostPolicy{{Host: host, Policy: "deny"}} })
	dirs := map[Direction]bool{}
	for range 2 {
		e := waitEvent(n.t, n, LinkDown)
		dirs[e.Link.Direction] = true
		if !errors.Is(e.Err, ErrDenied) || !strings.Contains(e.Err.Error(), text) {
			n.t.Errorf("%v's %s link down: %v", n.domains, e.Link.Direction, e.Err)
		}
	}
	if !dirs[Outgoing] || !dirs[Incoming] {
		n.t.Errorf("%v's link down events for %v", n.domains, dirs)
	}
}

// verify asks n, as its authoritative server, about a key on p's stream.
func (p *rawPeer) verify(key, from, to, id string) dialback.Type {
	p.t.Helper()
	p.write("<db:verify from='" + from + "' to='" + to + "' id='" + id + "'>" + key + "</db:verify>")
	for {
		e, err := p.r.Next()
		if err != nil {
			p.t.Fatalf("waiting for the answer: %v", err)
		}
		el, err := decodeDialback(e)
		if err != nil {
			p.t.Fatal(err)
		}
		if v, ok := el.(dialback.Verify); ok && v.ID == id {
			return v.Type
		}
	}
}

// startTLS runs STARTTLS on p's stream as a peer without a client
// certificate, restarts the stream and reads the new features.
func (p *rawPeer) startTLS(from, to string) {
	p.t.Helper()
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if e, err := p.r.Next(); err != nil || e.Name.Local != "proceed" {
		p.t.Fatalf("STARTTLS: %v %s", err, e.Raw)
	}
	tc := tls.Client(p.conn, &tls.Config{ServerName: to, RootCAs: testCA().Pool()})
	if err := tc.HandshakeContext(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.conn = tc
	p.r = wire.NewReader(tc, wire.DefaultLimits)
	p.write(headerString(from, to))
	h, err := p.r.ReadHeader()
	if err != nil {
		p.t.Fatalf("header: %v", err)
	}
	p.id = h.ID
	if _, err := p.r.Next(); err != nil {
		p.t.Fatalf("features: %v", err)
	}
}

// TestReloadLiveSecret: a leaked secret is rotated with Reload; a peer that
// holds a stream open from before gets the keys made with it refused from
// then on, and the new secret's keys confirmed.
func TestReloadLiveSecret(t *testing.T) {
	b := newNode(t, listen(t), []string{"b.test"}, nil, withS2S(func(s *config.S2S) { s.Shared = "leaked" }))
	p := dialRaw(t, b, "y.test", "b.test")
	old := func(i int) string { return dialback.Key("leaked", "y.test", "b.test", "s"+strconv.Itoa(i)) }
	if typ := p.verify(old(0), "y.test", "b.test", "s0"); typ != dialback.Valid {
		t.Fatalf("before Reload: %q", typ)
	}
	b.reload(func(s *config.S2S) { s.Shared = "rotated" })
	if typ := p.verify(old(1), "y.test", "b.test", "s1"); typ != dialback.Invalid {
		t.Fatalf("a key of the old secret after Reload: %q, want invalid", typ)
	}
	key := dialback.Key("rotated", "y.test", "b.test", "s2")
	if typ := p.verify(key, "y.test", "b.test", "s2"); typ != dialback.Valid {
		t.Fatalf("a key of the new secret: %q", typ)
	}
}

// TestReloadLiveTLSMode: use_starttls made "required" by Reload refuses the
// next dialback request of a plaintext stream opened under "optional".
func TestReloadLiveTLSMode(t *testing.T) {
	b := authorityFor(t, []string{"x.test", "y.test"}, withMode("optional"))
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("before Reload: %q", typ)
	}
	b.reload(func(s *config.S2S) { s.UseStartTLS = "required" })
	p.write(dbResult("y.test", "b.test", dialback.Key(rawSecret, "b.test", "y.test", p.id)))
	if cond := p.streamError(); cond != "policy-violation" {
		t.Fatalf("stream error %q, want policy-violation", cond)
	}
	// The stream error is written before the stream is dropped from
	// Links(); its LinkDown event comes after.
	waitEvent(t, b, LinkDown)
	if links := b.m.Links(); len(links) != 0 {
		t.Fatalf("links %+v", links)
	}
}

// TestReloadLiveTrust: use_starttls made "required_trusted" by Reload
// judges the next request of a TLS stream by the peer's certificate (here
// none), not by the mode the stream started under.
func TestReloadLiveTrust(t *testing.T) {
	la, lb := listen(t), listen(t)
	domains := []string{"x.test", "y.test"}
	newNode(t, la, domains, map[string]netip.AddrPort{"b.test": addrOf(lb)}, withMode("required"),
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la), "y.test": addrOf(la)}, withMode("required"))
	p := dialRaw(t, b, "x.test", "b.test")
	p.startTLS("x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("before Reload: %q", typ)
	}
	b.reload(func(s *config.S2S) { s.UseStartTLS = "required_trusted" })
	p.write(dbResult("y.test", "b.test", dialback.Key(rawSecret, "b.test", "y.test", p.id)))
	r := p.nextAnswer()
	if r.Type != dialback.Failed || r.Err == nil || r.Err.Condition != stanza.NotAuthorized {
		t.Fatalf("answer %+v (%+v), want not-authorized", r, r.Err)
	}
}
