package interop

import (
	"strconv"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/s2s"
)

// TestProsodyStreamManagement: XEP-0198 with Prosody's mod_smacks, both
// directions. Prosody lists <sm/> only on a stream that is authenticated
// when it sends its features, which is the stream after SASL EXTERNAL
// (on a dialback stream the features come before authentication), so
// both sides use EXTERNAL here: our stream to Prosody enables SM when
// Prosody offers it, and Prosody's stream to us enables it when we do.
// Prosody acknowledges what we send (its log shows our acks empty its
// queue for its own stanzas, and we see ours acknowledged).
func TestProsodyStreamManagement(t *testing.T) {
	o, p := startProsodyPeer(t, "required_trusted", ProsodyConfig{
		TLS: "required", SecureAuth: true, CAPEM: testCA().PEM(), SASLExternal: true, StreamManagement: true,
	}, withSASLExternal)
	exchange(t, o, p, "sm")
	out, ins := ourLinks(t, o, prosodyDomain)
	wantAuth(t, out, ins, s2s.AuthSASLExternal, s2s.AuthSASLExternal)
	if !out.StreamManagement {
		t.Errorf("our outgoing link to Prosody has no stream management: %+v", out)
	}
	for _, in := range ins {
		if !in.StreamManagement {
			t.Errorf("Prosody's stream to us has no stream management: %+v", in)
		}
	}
	// Prosody enabled SM for our stream (its incoming session) and for
	// its own, and counted and acknowledged stanzas both ways.
	waitLog(t, p, "Prosody answering our <enable/>", "Sending[s2sin]: <enabled", "urn:xmpp:sm:3")
	waitLog(t, p, "our answer to Prosody's <enable/>", "Received[s2sout]: <enabled", "urn:xmpp:sm:3")
	waitLog(t, p, "Prosody answering our <r/>", "Received ack request, acking for")
	waitLog(t, p, "our <a/> emptying Prosody's queue", "#queue = 0 (acked:")

	// Ours: a burst of messages, each answered by Prosody with an error
	// (no such user), all acknowledged: nothing stays unacknowledged.
	const n = 100
	for i := range n {
		o.send(t, "<message type='chat' id='sm-burst-"+strconv.Itoa(i)+"' from='tester@"+ourDomain+"' to='nobody@"+prosodyDomain+"'><body>x</body></message>")
	}
	for i := range n {
		id := "sm-burst-" + strconv.Itoa(i)
		o.deliveredMatching(t, "Prosody's answer to "+id, func(s s2s.Stanza) bool { return s.ID == id })
	}
	deadline := time.Now().Add(wait)
	for {
		outs, _ := o.links(prosodyDomain)
		if len(outs) == 1 && outs[0].Unacked == 0 && outs[0].StanzasOut >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("our link to Prosody still waits for acknowledgements: %+v", outs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProsodyDialbackNoStreamManagement: with mod_smacks loaded but
// dialback as the method (no EXTERNAL), Prosody lists no <sm/> (its
// features come before authentication), and we list ours but Prosody
// does not enable it either: both links run without XEP-0198, and work.
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
