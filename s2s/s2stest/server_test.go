package s2stest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/s2s"
)

var discard = slog.New(slog.DiscardHandler)

// TestStartTLSModes federates a host and a stub both ways in every
// use_starttls mode pair that can work, and checks the encryption each
// link got, and that the pairs that cannot work are bounced.
func TestStartTLSModes(t *testing.T) {
	for i, tc := range []struct {
		host, stub string
		tls        bool   // the links are encrypted
		bounce     string // the host's bounce condition when they cannot be
	}{
		{host: "false", stub: "false"},
		{host: "optional", stub: "optional", tls: true},
		{host: "required", stub: "required", tls: true},
		{host: "required_trusted", stub: "required_trusted", tls: true},
		{host: "false", stub: "optional"},
		{host: "optional", stub: "false"},
		{host: "required_trusted", stub: "optional", tls: true},
		{host: "optional", stub: "required_trusted", tls: true},
		{host: "false", stub: "required", bounce: "remote-server-not-found"},
		{host: "required", stub: "false", bounce: "remote-server-not-found"},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.host+"-"+tc.stub, func(t *testing.T) {
			h, stub := newPair(t, tc.host, nil, WithStartTLS(tc.stub))
			h.send(`<message from='alice@host.example/a' to='bob@remote.example' id='m1' type='chat'><body>hi</body></message>`)
			if tc.bounce != "" {
				b := h.nextBounce()
				if string(b.Condition) != tc.bounce || b.Stanza.ID != "m1" || !errors.Is(b.Err, s2s.ErrNegotiation) {
					t.Fatalf("bounce %s (%s, %v), want %s wrapping ErrNegotiation", b.Condition, b.Text, b.Err, tc.bounce)
				}
				return
			}
			got := next(t, stub)
			if got.ID != "m1" || got.From != "alice@host.example/a" || got.To != "bob@remote.example" || got.Name != "message" {
				t.Fatalf("stub received %+v", got)
			}
			stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example/a' id='m2'><body>hello</body></message>`)
			if got := h.nextDelivered(); got.ID != "m2" || got.From != "bob@remote.example" {
				t.Fatalf("host received %+v", got)
			}
			// Both directions are up once the stub saw the host's link and
			// its own go up.
			// (The two come in either order.)
			up := map[s2s.Direction]s2s.Event{}
			ctx := ctxWait(t)
			for len(up) < 2 {
				e, err := stub.NextEvent(ctx)
				if err != nil {
					t.Fatalf("stub links up: %v, want both directions", up)
				}
				if e.Kind == s2s.LinkUp {
					up[e.Link.Direction] = e
				}
			}
			for _, e := range up {
				if (e.Link.TLSVersion != 0) != tc.tls || e.Link.Auth != s2s.AuthDialback || e.Link.Remote != hostDomain {
					t.Errorf("stub link %s: tls=%s auth=%s remote=%s", e.Link.Direction, e.Link.TLS(), e.Link.Auth, e.Link.Remote)
				}
			}
			if got := stub.Received(); len(got) != 1 || got[0].ID != "m1" {
				t.Errorf("Received() = %+v", got)
			}
			if bs := stub.Bounces(); len(bs) != 0 {
				t.Errorf("Bounces() = %+v", bs)
			}
		})
	}
}

// TestCertificates checks what the stub hands out for TLS: its certificate
// names its domain, and RootCAs trusts it and the host's.
func TestCertificates(t *testing.T) {
	stub := NewServer(t, "Remote.Example.")
	if stub.Domain() != stubDomain {
		t.Errorf("Domain() = %q", stub.Domain())
	}
	a := stub.Address()
	if a.Host != stubDomain || a.IP != stub.Addr().Addr() || a.Port != int(stub.Addr().Port()) || !a.IP.IsLoopback() {
		t.Errorf("Address() = %+v, Addr() = %s", a, stub.Addr())
	}
	for i, tc := range []struct {
		cert tls.Certificate
		name string
	}{
		{stub.Certificate(), stubDomain},
		{stub.IssueCertificate(hostDomain, "other.example"), hostDomain},
		{stub.IssueCertificate(hostDomain, "other.example"), "other.example"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			leaf, err := x509.ParseCertificate(tc.cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := leaf.VerifyHostname(tc.name); err != nil {
				t.Error(err)
			}
			pool := stub.RootCAs()
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPing checks that the stub answers XEP-0199 pings from the host and
// records them.
func TestPing(t *testing.T) {
	h, stub := newPair(t, "required_trusted", nil, WithStartTLS("required_trusted"))
	h.send(`<iq from='host.example' to='remote.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`)
	got := h.nextDelivered()
	if got.Name != "iq" || got.Type != "result" || got.ID != "p1" || got.From != stubDomain || got.To != hostDomain {
		t.Fatalf("ping answer %+v: %s", got, got.Raw)
	}
	if r := next(t, stub); r.ID != "p1" || r.Type != "get" {
		t.Fatalf("stub recorded %+v", r)
	}
}

// TestDialbackDeny: a stub that refuses the host makes the host bounce what
// it sent, and the stub's own stanzas to the host are refused by its policy.
func TestDialbackDeny(t *testing.T) {
	h, stub := newPair(t, "false", nil)
	stub.SetDialback(DialbackDeny)
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	b := h.nextBounce()
	var se stanza.Error
	if b.Condition != stanza.RemoteServerNotFound || !errors.Is(b.Err, s2s.ErrAuth) ||
		!errors.As(b.Err, &se) || se.Condition != stanza.PolicyViolation {
		t.Errorf("host bounce %s: %s (%v)", b.Condition, b.Text, b.Err)
	}
	if e := nextEvent(t, stub, s2s.AuthFailed, s2s.Incoming); e.Link.Remote != hostDomain {
		t.Errorf("stub auth-failed event for %+v", e.Link)
	}

	stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example' id='m2'/>`)
	if b := nextBounce(t, stub); b.Condition != stanza.PolicyViolation || b.Stanza.ID != "m2" {
		t.Errorf("stub bounce %s: %s", b.Condition, b.Text)
	}
	if got := stub.Received(); len(got) != 0 {
		t.Errorf("stub received %+v", got)
	}
}

// TestDialbackWrongKey: the host refuses a stub whose keys do not verify, and
// delivers nothing from it, while the host's own link to the stub works.
func TestDialbackWrongKey(t *testing.T) {
	h, stub := newPair(t, "optional", nil, WithStartTLS("optional"))
	stub.SetDialback(DialbackWrongKey)
	stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example' id='m1'/>`)
	b := nextBounce(t, stub)
	if b.Condition != stanza.RemoteServerNotFound || !errors.Is(b.Err, dialback.ErrInvalid) || !errors.Is(b.Err, s2s.ErrAuth) {
		t.Errorf("stub bounce %s: %s (%v)", b.Condition, b.Text, b.Err)
	}
	if e := h.nextEvent(s2s.AuthFailed, s2s.Incoming); e.Link.Remote != stubDomain || !errors.Is(e.Err, dialback.ErrInvalid) {
		t.Errorf("host auth-failed event %+v: %v", e.Link, e.Err)
	}

	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m2'/>`)
	if got := next(t, stub); got.ID != "m2" {
		t.Errorf("stub received %+v", got)
	}
	select {
	case st := <-h.delivered:
		t.Errorf("host delivered %s from a stub it refused", st.Raw)
	default:
	}
}

// TestStall: a stub that accepts and never answers makes the host give up
// after its NegotiationTimeout and bounce with remote-server-timeout.
func TestStall(t *testing.T) {
	h, stub := newPair(t, "false", func(c *s2s.Config) {
		c.NegotiationTimeout = time.Second
	})
	stub.SetStall(true)
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	b := h.nextBounce()
	if b.Condition != stanza.RemoteServerTimeout || b.Stanza.ID != "m1" || !errors.Is(b.Err, context.DeadlineExceeded) {
		t.Errorf("host bounce %s: %s (%v)", b.Condition, b.Text, b.Err)
	}
	if got := stub.Received(); len(got) != 0 {
		t.Errorf("stub received %+v", got)
	}
}

// TestDrop: after the stub drops every connection, the host takes its links
// down (none of its stanzas bounced: what the stub had not acknowledged is
// sent again, XEP-0198), and a new stanza opens a new link that works.
func TestDrop(t *testing.T) {
	h, stub := newPair(t, "required", nil, WithStartTLS("required"))
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	if got := next(t, stub); got.ID != "m1" {
		t.Fatalf("stub received %+v", got)
	}
	stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example' id='r1'/>`)
	if got := h.nextDelivered(); got.ID != "r1" {
		t.Fatalf("host received %+v", got)
	}
	h.nextEvent(s2s.LinkUp, s2s.Outgoing)
	h.nextEvent(s2s.LinkUp, s2s.Incoming)

	stub.Drop()
	if e := h.nextEvent(s2s.LinkDown, s2s.Outgoing); e.Err == nil {
		t.Error("host's outgoing link went down cleanly after a drop")
	}
	h.nextEvent(s2s.LinkDown, s2s.Incoming)
	h.noBounce()
	// The stub's own Manager must have seen its links go too: until then
	// it would verify the host's next key over its dead outgoing link, and
	// fail it (see the package's report on authority.Verify).
	waitLinks(t, stub, s2s.LinkDown, s2s.Outgoing, s2s.Incoming)

	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m2'/>`)
	got := next(t, stub)
	if got.ID == "m1" {
		// Dropped before the stub acknowledged it: sent once more.
		got = next(t, stub)
	}
	if got.ID != "m2" {
		t.Fatalf("stub received %+v after the drop", got)
	}
	stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example' id='r2'/>`)
	got = h.nextDelivered()
	if got.ID == "r1" {
		got = h.nextDelivered() // the stub's own resend
	}
	if got.ID != "r2" {
		t.Fatalf("host received %+v after the drop", got)
	}
}

// TestDropAfter: the stub records exactly the stanzas up to the n-th, then
// vanishes. It stalls new connections meanwhile, so that whatever the host
// still had queued cannot reach it on a new link: every stanza after the n-th
// is bounced by the host (XEP-0198: it was never acknowledged; none is
// lost), and none is recorded, even one the stub had already read. One the
// stub recorded may be bounced too, when it vanished before acknowledging
// it.
func TestDropAfter(t *testing.T) {
	h, stub := newPair(t, "false", func(c *s2s.Config) {
		c.NegotiationTimeout = time.Second
	})
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	next(t, stub)
	// Wait for the link itself, so that every later stanza is known to
	// have come on it.
	nextEvent(t, stub, s2s.LinkUp, s2s.Incoming)

	stub.DropAfter(2)
	stub.SetStall(true)
	for _, id := range []string{"m2", "m3", "m4", "m5"} {
		h.send(`<message from='alice@host.example' to='bob@remote.example' id='` + id + `'/>`)
	}
	h.nextEvent(s2s.LinkDown, s2s.Outgoing)
	// m6 is bounced whatever the host's link is doing now (reconnecting to
	// a stalled stub, or waiting to retry), and after anything queued
	// before it.
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m6'/>`)
	var bounced []string
	for {
		b := h.nextBounce()
		bounced = append(bounced, b.Stanza.ID)
		if b.Stanza.ID == "m6" {
			break
		}
	}
	for _, id := range []string{"m4", "m5"} {
		if !slices.Contains(bounced, id) {
			t.Errorf("%s neither recorded by the stub nor bounced (bounced %v)", id, bounced)
		}
	}
	var ids []string
	for _, st := range stub.Received() {
		ids = append(ids, st.ID)
	}
	if want := []string{"m1", "m2", "m3"}; !slices.Equal(ids, want) {
		t.Errorf("stub received %v, want %v", ids, want)
	}
}

// TestClose: a stub closed early is a remote domain that went away; the host
// bounces with remote-server-not-found (connection refused).
func TestClose(t *testing.T) {
	h, stub := newPair(t, "false", nil)
	stub.Close()
	stub.Close() // a second Close does nothing
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	if b := h.nextBounce(); b.Condition != stanza.RemoteServerNotFound {
		t.Errorf("host bounce %s: %s (%v)", b.Condition, b.Text, b.Err)
	}
	if err := stub.Send(context.Background(), []byte(`<message from='remote.example' to='host.example'/>`)); !errors.Is(err, s2s.ErrClosed) {
		// The Manager bounces instead of refusing; either way the
		// stanza must not be sent.
		if b := nextBounce(t, stub); b.Condition != stanza.ServiceUnavailable {
			t.Errorf("Send after Close: %v, bounce %s", err, b.Condition)
		}
	}
}

// TestUnknownPeer: the stub knows only the peers it was told of; a stanza to
// any other domain bounces as not found, without DNS.
func TestUnknownPeer(t *testing.T) {
	stub := NewServer(t, stubDomain)
	stubSend(t, stub, `<message from='remote.example' to='nowhere.example' id='x'/>`)
	if b := nextBounce(t, stub); b.Condition != stanza.RemoteServerNotFound {
		t.Errorf("bounce %s: %s", b.Condition, b.Text)
	}
	if err := stub.Send(context.Background(), []byte(`not xml`)); !errors.Is(err, s2s.ErrNotStanza) {
		t.Errorf("Send(not xml) = %v", err)
	}
}

// TestSASLExternal: with WithSASLExternal and certificates both sides trust,
// the stub's links authenticate by certificate in both directions.
func TestSASLExternal(t *testing.T) {
	h, stub := newPair(t, "required_trusted", nil, WithStartTLS("required_trusted"), WithSASLExternal())
	h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
	if _, err := stub.Next(ctxWait(t)); err != nil {
		t.Fatal(err)
	}
	stubSend(t, stub, `<message from='bob@remote.example' to='alice@host.example' id='m2'/>`)
	if got := h.nextDelivered(); got.ID != "m2" {
		t.Fatalf("host received %+v", got)
	}
	for _, l := range stub.Links() {
		if l.Auth != s2s.AuthSASLExternal {
			t.Errorf("stub link %s %s: auth %s", l.Direction, l.Remote, l.Auth)
		}
	}
	if n := len(stub.Links()); n != 2 {
		t.Errorf("%d stub links", n)
	}
}
