package interop

import (
	"sync"
	"testing"

	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/s2s"
)

// otherCA signs certificates that our Manager does not trust: a peer
// holding one is authenticated by dialback, never by SASL EXTERNAL.
var otherCA = sync.OnceValue(func() *testcert.CA {
	ca, err := testcert.NewCA("federation interop untrusted CA")
	if err != nil {
		panic(err)
	}
	return ca
})

// untrustedLeafFor returns a certificate for domain from otherCA.
func untrustedLeafFor(t *testing.T, domain string) *testcert.Leaf {
	t.Helper()
	leaf, err := otherCA().Leaf(testcert.Options{DNSNames: []string{domain}, XmppAddrs: []string{domain}})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// withSASLExternal turns SASL EXTERNAL back on (startOurs turns it off for
// the dialback scenarios): it is the default a host gets.
func withSASLExternal(c *s2s.Config) { c.DisableSASLExternal = false }

// exchange makes stanzas flow both ways: the peer pings us and gets our
// pong; we ping the peer and get its pong; we send a message, which the
// peer answers with an error because the user does not exist — proof that
// it received and routed it. tag keeps the stanza IDs of one test apart.
func exchange(t *testing.T, o *ours, p peer, tag string) {
	t.Helper()
	remote := p.Domain()
	p.PingUs(t)
	got := o.deliveredMatching(t, "the peer's ping", isPing)
	if domainOf(got.From) != remote || got.To != ourDomain {
		t.Fatalf("delivered %s", got.Raw)
	}
	p.GotPong(t, got.ID)

	o.send(t, "<iq type='get' id='"+tag+"-ping' from='"+ourDomain+"' to='"+remote+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	pong := o.deliveredMatching(t, "the peer's pong", func(s s2s.Stanza) bool { return s.ID == tag+"-ping" })
	if pong.Type != "result" || pong.From != remote {
		t.Fatalf("pong %s", pong.Raw)
	}
	o.send(t, "<message type='chat' id='"+tag+"-msg' from='tester@"+ourDomain+"' to='nobody@"+remote+"'><body>hello</body></message>")
	ack := o.deliveredMatching(t, "the peer's answer to our message", func(s s2s.Stanza) bool { return s.ID == tag+"-msg" })
	if ack.Name != "message" || ack.Type != "error" {
		t.Fatalf("answer %s", ack.Raw)
	}
}

// ourLinks returns our one outgoing link with remote and our incoming ones,
// failing the test unless there is exactly one outgoing and at least one
// incoming link, and checks that all are encrypted. A peer may hold more
// than one stream to us for a moment (ejabberd opens one for each key it
// verifies), so incoming links are not counted exactly.
func ourLinks(t *testing.T, o *ours, remote string) (out s2s.LinkInfo, ins []s2s.LinkInfo) {
	t.Helper()
	outs, ins := o.links(remote)
	if len(outs) != 1 || len(ins) == 0 {
		t.Fatalf("links with %s: out %+v, in %+v", remote, outs, ins)
	}
	for _, l := range append(outs, ins...) {
		t.Logf("our %s link: %s %s, auth %s", l.Direction, l.TLS(), l.Cipher(), l.Auth)
		if l.TLSVersion == 0 {
			t.Errorf("our %s link is not encrypted", l.Direction)
		}
	}
	return outs[0], ins
}

// wantAuth checks how our links with a peer were authenticated.
func wantAuth(t *testing.T, out s2s.LinkInfo, ins []s2s.LinkInfo, wantOut, wantIn s2s.Auth) {
	t.Helper()
	if out.Auth != wantOut {
		t.Errorf("our outgoing link authenticated by %q, want %q", out.Auth, wantOut)
	}
	for _, in := range ins {
		if in.Auth != wantIn {
			t.Errorf("our incoming link authenticated by %q, want %q", in.Auth, wantIn)
		}
	}
}

// prosodyAgrees checks that our links and Prosody's sessions with us say
// the same: our outgoing link is Prosody's incoming session and the other
// way round, each authenticated by the method given. It returns Prosody's
// sessions for further checks.
func prosodyAgrees(t *testing.T, o *ours, p *prosodyPeer, wantOut, wantIn s2s.Auth) (pOut, pIn ProsodySession) {
	t.Helper()
	out, ins := ourLinks(t, o, prosodyDomain)
	wantAuth(t, out, ins, wantOut, wantIn)
	if len(ins) != 1 {
		t.Fatalf("Prosody holds %d streams to us, want 1: %+v", len(ins), ins)
	}
	in := ins[0]

	ctx, cancel := ctlContext()
	defer cancel()
	ss, show, err := p.S2SSessions(ctx, ourDomain)
	if err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	t.Logf("prosodyctl shell s2s show:\n%s", show)
	var gotIn, gotOut []ProsodySession
	for _, s := range ss {
		if s.Auth() == 0 {
			continue // a stream still negotiating, or one only verifying a key
		}
		if s.Incoming() {
			gotIn = append(gotIn, s)
		} else {
			gotOut = append(gotOut, s)
		}
	}
	if len(gotIn) != 1 || len(gotOut) != 1 {
		t.Fatalf("Prosody's authenticated sessions with %s: incoming %+v, outgoing %+v", ourDomain, gotIn, gotOut)
	}
	// Prosody's incoming session is our outgoing link.
	if a := gotIn[0].Auth(); a != out.Auth {
		t.Errorf("Prosody says our outgoing link authenticated by %q, we say %q", a, out.Auth)
	}
	if a := gotOut[0].Auth(); a != in.Auth {
		t.Errorf("Prosody says our incoming link authenticated by %q, we say %q", a, in.Auth)
	}
	for _, s := range []ProsodySession{gotIn[0], gotOut[0]} {
		if s.Security == "insecure" {
			t.Errorf("Prosody's %s session is not encrypted", s.Dir)
		}
	}
	return gotOut[0], gotIn[0]
}

// TestProsodySASLExternal: Prosody with s2s_secure_auth and
// s2s_require_encryption, our side with use_starttls = "required_trusted",
// both trusting the test CA that signed both certificates. Both directions
// authenticate with SASL EXTERNAL, and Prosody's report agrees.
func TestProsodySASLExternal(t *testing.T) {
	o, p := startProsodyPeer(t, "required_trusted", ProsodyConfig{
		TLS: "required", SecureAuth: true, CAPEM: testCA().PEM(), SASLExternal: true,
	}, withSASLExternal)
	exchange(t, o, p, "ext")
	prosodyAgrees(t, o, p, s2s.AuthSASLExternal, s2s.AuthSASLExternal)
	waitLog(t, p, "Prosody accepting our SASL EXTERNAL", "Accepting SASL EXTERNAL identity from "+ourDomain)
	waitLog(t, p, "Prosody's SASL EXTERNAL with us", "SASL EXTERNAL with "+ourDomain+" succeeded")
}

// TestProsodySASLExternalFallback: Prosody's certificate comes from a CA
// we do not trust, while Prosody trusts ours (s2s_secure_auth off, as for
// a peer it cannot verify). Our side does not offer SASL EXTERNAL to
// Prosody, so Prosody falls back to dialback; Prosody offers it to us and
// we use it. Both reports say so, direction by direction.
func TestProsodySASLExternalFallback(t *testing.T) {
	ln := listenOurs(t)
	p := &prosodyPeer{Prosody: StartProsody(t, ProsodyConfig{
		Domain:       prosodyDomain,
		TLS:          "required",
		CertPEM:      untrustedLeafFor(t, prosodyDomain).PEM,
		CAPEM:        testCA().PEM(),
		SASLExternal: true,
		Routes:       []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}},
	}), pings: make(chan pingResult, 1)}
	o := startOurs(t, ln, "required", prosodyDomain, p.Port, withSASLExternal)
	exchange(t, o, p, "fallback")
	pOut, _ := prosodyAgrees(t, o, p, s2s.AuthSASLExternal, s2s.AuthDialback)
	// We never offered EXTERNAL to Prosody, so it did not try it.
	if pOut.SASL != "" {
		t.Errorf("Prosody's SASL EXTERNAL state on its stream to us: %q, want none", pOut.SASL)
	}
}

// TestEjabberdSASLExternal: ejabberd holds a certificate from the test CA,
// which we trust, but has no CA of its own configured, so it does not
// trust ours. Its stream to us authenticates with SASL EXTERNAL. ejabberd
// offers EXTERNAL to us too but refuses it with <failure/>, and our stream
// falls back to dialback on a new stream. ejabberd's log agrees.
func TestEjabberdSASLExternal(t *testing.T) {
	ln := listenOurs(t)
	e := &ejabberdPeer{Ejabberd: StartEjabberd(t, EjabberdConfig{
		Domain:  ejabberdDomain,
		TLS:     "required",
		CertPEM: leafFor(t, ejabberdDomain).PEM,
		Routes:  []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}},
	})}
	o := startOurs(t, ln, "required_trusted", ejabberdDomain, e.Port, withSASLExternal)
	exchange(t, o, e, "ej-ext")
	out, ins := ourLinks(t, o, ejabberdDomain)
	wantAuth(t, out, ins, s2s.AuthDialback, s2s.AuthSASLExternal)
	ejabberdAgrees(t, e, false)
}

// ejabberdAgrees checks that ejabberd's log tells the story our links
// tell: its stream to us authenticated with SASL EXTERNAL; ours to it tried
// EXTERNAL, was refused, and authenticated with dialback — or, when
// trusted, with EXTERNAL.
func ejabberdAgrees(t *testing.T, e *ejabberdPeer, trusted bool) {
	t.Helper()
	waitLog(t, e, "ejabberd authenticated to us by SASL EXTERNAL",
		"Accepted outbound s2s EXTERNAL authentication "+ejabberdDomain+" -> "+ourDomain)
	if trusted {
		waitLog(t, e, "ejabberd accepting our SASL EXTERNAL",
			"Accepted inbound s2s EXTERNAL authentication "+ourDomain+" -> "+ejabberdDomain)
		return
	}
	waitLog(t, e, "ejabberd refusing our SASL EXTERNAL",
		"Failed inbound s2s EXTERNAL authentication "+ourDomain+" -> "+ejabberdDomain)
	waitLog(t, e, "ejabberd accepting our dialback",
		"Accepted inbound s2s dialback authentication "+ourDomain+" -> "+ejabberdDomain)
}
