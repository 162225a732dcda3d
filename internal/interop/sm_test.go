package interop

import (
	"strconv"
	"strings"
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
	prosodyCountsPipelined(t, p)

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

// prosodyCountsPipelined checks, in Prosody's log of its session for our
// stream, what it does with the stanza we write right behind <enable/>,
// in the same write (pipelined, s2s/smout.go): it reads <enable/>,
// answers <enabled/>, and counts that stanza as the first it handled;
// and no <r/> of ours came before that stanza (we ask for none before
// Prosody's <enabled/>).
func prosodyCountsPipelined(t *testing.T, p peer) {
	t.Helper()
	enable := waitLog(t, p, "our <enable/>", "Received[s2sin]: <enable", "urn:xmpp:sm:3")
	head, _, _ := strings.Cut(enable, "\t")
	sess := head[strings.LastIndexByte(head, ' ')+1:]
	var got []string
	seen := false
	for _, line := range strings.Split(p.Log(), "\n") {
		if !strings.Contains(line, sess+"\t") {
			continue
		}
		if strings.Contains(line, "Received[s2sin]: <enable") {
			seen = true
		}
		if !seen {
			continue
		}
		switch {
		case strings.Contains(line, "Received[s2sin]: <enable"):
			got = append(got, "enable")
		case strings.Contains(line, "Sending[s2sin]: <enabled"):
			got = append(got, "enabled")
		case strings.Contains(line, "Received[s2sin]: <r "):
			got = append(got, "r")
		case strings.Contains(line, "Handled 1 incoming stanzas"):
			got = append(got, "handled 1")
		}
		if len(got) == 3 {
			break
		}
	}
	if strings.Join(got, ", ") != "enable, enabled, handled 1" {
		t.Errorf("Prosody's session %s: %q, want <enable/> read, <enabled/> sent, and the stanza behind <enable/> counted before any <r/>", sess, got)
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

// TestProsodyBidiStreamManagement: XEP-0198 on the reverse direction of a
// bidi stream (XEP-0288) with Prosody 0.12 (mod_smacks and mod_s2s_bidi,
// SASL EXTERNAL, where Prosody offers and enables SM), both ways. What it
// pins on the wire:
//
//   - prosody-first: Prosody opens the stream and enables SM on it; our
//     stanzas back over it are counted by Prosody from its <enabled/> on,
//     and it answers our <r/> on the stream it opened with that count
//     (Sending[s2sout]: <a/>), so our link on that stream keeps
//     StreamManagement and has nothing left unacknowledged.
//   - we-first: we open the stream and enable SM; Prosody's stanzas back
//     over it are followed by its own <r/> (Sending[s2sin]: <r/>), which
//     we answer with the count of what we received, so that its queue
//     empties (before, we answered h='0' and Prosody kept them all).
func TestProsodyBidiStreamManagement(t *testing.T) {
	for _, weFirst := range []bool{false, true} {
		name := "prosody-first"
		if weFirst {
			name = "we-first"
		}
		t.Run(name, func(t *testing.T) {
			o, p := bidiProsody(t, "required_trusted", ProsodyConfig{
				TLS: "required", SecureAuth: true, CAPEM: testCA().PEM(), SASLExternal: true, StreamManagement: true,
			}, withSASLExternal)
			if weFirst {
				o.send(t, "<iq type='get' id='bsm-first' from='"+ourDomain+"' to='"+prosodyDomain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
				o.deliveredMatching(t, "Prosody's pong", func(s s2s.Stanza) bool { return s.ID == "bsm-first" })
			} else {
				p.PingUs(t)
				got := o.deliveredMatching(t, "Prosody's ping", isPing)
				p.GotPong(t, got.ID)
				// Prosody sends <enable/> on its stream from a timer after
				// our features, which under load may fire after the
				// ping's exchange: what follows is about the stream once
				// SM is on in our direction, so wait for it.
				deadline := time.Now().Add(wait)
				for {
					outs, _ := o.links(prosodyDomain)
					if len(outs) == 1 && outs[0].StreamManagement {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("our link back over Prosody's stream has no stream management: %+v", outs)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			const n = 20
			for i := range n {
				o.send(t, "<message type='chat' id='bsm-"+strconv.Itoa(i)+"' from='tester@"+ourDomain+"' to='nobody@"+prosodyDomain+"'><body>x</body></message>")
			}
			for i := range n {
				id := "bsm-" + strconv.Itoa(i)
				o.deliveredMatching(t, "Prosody's answer to "+id, func(s s2s.Stanza) bool { return s.ID == id })
			}
			deadline := time.Now().Add(wait)
			for {
				outs, ins := o.links(prosodyDomain)
				if len(outs) == 1 && outs[0].Unacked == 0 && outs[0].StanzasOut >= n {
					out := outs[0]
					if !out.StreamManagement {
						t.Fatalf("our link to Prosody lost stream management: %+v", out)
					}
					shared := false
					for _, in := range ins {
						shared = shared || in.Stream == out.Stream
					}
					if !shared {
						t.Fatalf("our link %+v is not on a bidi stream with Prosody's (%+v)", out, ins)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("our link to Prosody still waits for acknowledgements: %+v", outs)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !weFirst {
				// Prosody answers our <r/> on the stream it opened, with
				// its count of our stanzas (our link would have turned
				// acknowledgements off had the count been short).
				line := waitLog(t, p, "Prosody answering our <r/> on its outgoing stream", "Sending[s2sout]: <a", "urn:xmpp:sm:3")
				t.Logf("Prosody: %s", line)
				return
			}
			// Prosody asks us, on our stream, for its stanzas back, and
			// our answers empty its queue.
			t.Logf("Prosody: %s", waitLog(t, p, "Prosody's <r/> on our stream", "Sending[s2sin]: <r", "urn:xmpp:sm:3"))
			line := waitLogFunc(t, p, "our <a/> emptying Prosody's queue for its stanzas back", func(line string) bool {
				return strings.Contains(line, "s2sin") && strings.Contains(line, "#queue = 0 (acked: ") && !strings.Contains(line, "(acked: 0)")
			})
			t.Logf("Prosody: %s", line)
		})
	}
}

// waitLogFunc is waitLog for a line that ok accepts.
func waitLogFunc(t *testing.T, p peer, what string, ok func(line string) bool) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(p.Log(), "\n") {
			if ok(line) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer's log shows no %s within %s", what, wait)
		}
		<-tick.C
	}
}
