package interop

import (
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

// TestProsodyStreamManagement: XEP-0198 with Prosody's mod_smacks. Prosody
// lists <sm/> only on a stream that is authenticated when it sends its
// features, which is the stream after SASL EXTERNAL (on a dialback stream
// the features come before authentication), so both sides use EXTERNAL
// here. Prosody's stream to us enables SM when we offer it: we count what
// we hand to the host and answer its <r/>, and our <a/> empties Prosody's
// queue of unacknowledged stanzas.
func TestProsodyStreamManagement(t *testing.T) {
	o, p := startProsodyPeer(t, "required_trusted", ProsodyConfig{
		TLS: "required", SecureAuth: true, CAPEM: testCA().PEM(), SASLExternal: true, StreamManagement: true,
	}, withSASLExternal)
	exchange(t, o, p, "sm")
	out, ins := ourLinks(t, o, prosodyDomain)
	wantAuth(t, out, ins, s2s.AuthSASLExternal, s2s.AuthSASLExternal)
	for _, in := range ins {
		if !in.StreamManagement {
			t.Errorf("Prosody's stream to us has no stream management: %+v", in)
		}
	}
	waitLog(t, p, "our answer to Prosody's <enable/>", "Received[s2sout]: <enabled", "urn:xmpp:sm:3")
	waitLog(t, p, "our <a/> emptying Prosody's queue", "#queue = 0 (acked:")
}

// TestProsodyDialbackNoStreamManagement: with mod_smacks loaded but
// dialback as the method (no EXTERNAL), Prosody lists no <sm/> (its
// features come before authentication) and does not enable ours either:
// both links run without XEP-0198, and work.
func TestProsodyDialbackNoStreamManagement(t *testing.T) {
	o, p := startProsodyPeer(t, "optional", ProsodyConfig{TLS: "optional", StreamManagement: true})
	exchange(t, o, p, "sm-db")
	outs, ins := o.links(prosodyDomain)
	for _, l := range append(outs, ins...) {
		if l.StreamManagement {
			t.Errorf("our %s link with Prosody has stream management on a dialback stream: %+v", l.Direction, l)
		}
	}
}

// TestEjabberdNoStreamManagement: ejabberd has no XEP-0198 on s2s; our
// links with it run without, and work (the scenarios run unchanged in
// TestEjabberd).
func TestEjabberdNoStreamManagement(t *testing.T) {
	ln := listenOurs(t)
	e := &ejabberdPeer{Ejabberd: StartEjabberd(t, EjabberdConfig{
		Domain:  ejabberdDomain,
		TLS:     "optional",
		CertPEM: leafFor(t, ejabberdDomain).PEM,
		Routes:  []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.port()}},
	})}
	o := startOurs(t, ln, "optional", ejabberdDomain, e.Port)
	exchange(t, o, e, "ej-nosm")
	outs, ins := o.links(ejabberdDomain)
	if len(outs) != 1 || len(ins) == 0 {
		t.Fatalf("links with ejabberd: out %+v, in %+v", outs, ins)
	}
	for _, l := range append(outs, ins...) {
		if l.StreamManagement {
			t.Errorf("our %s link with ejabberd has stream management: %+v", l.Direction, l)
		}
	}
}
