package main

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/xmpp-s2s/federation/s2s"
)

func TestLogin(t *testing.T) {
	w := newWorld(t)
	c2s, s2sLn := listen(t)
	s := w.start(t, "a.test", c2s, s2sLn, "", "alice:wonderland", "Bob:builder")
	for i, tc := range []struct {
		user, pass string
		mech       sasl.Mechanism
		ok         bool
	}{
		0: {"alice", "wonderland", sasl.ScramSha256, true},
		1: {"alice", "wonderland", sasl.ScramSha1, true},
		2: {"alice", "wonderland", sasl.Plain, true},
		3: {"bob", "builder", sasl.Plain, true}, // accounts are case-folded
		4: {"alice", "wrong", sasl.ScramSha256, false},
		5: {"alice", "wrong", sasl.ScramSha1, false},
		6: {"alice", "wrong", sasl.Plain, false},
		7: {"nobody", "wonderland", sasl.ScramSha256, false},
		8: {"nobody", "wonderland", sasl.Plain, false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c, err := login(t, s, tc.user, tc.pass, tc.mech)
			if tc.ok != (err == nil) {
				t.Fatalf("login %s with %s: err = %v, want ok = %t", tc.user, tc.mech.Name, err, tc.ok)
			}
			if err != nil {
				return
			}
			if c.jid.Bare().String() != strings.ToLower(tc.user)+"@a.test" || c.jid.Resourcepart() == "" {
				t.Fatalf("bound %s", c.jid)
			}
		})
	}
}

// A stream to a domain the server does not serve ends with host-unknown.
// (A raw connection: mellium's client starts TLS without waiting for the
// error.)
func TestHostUnknown(t *testing.T) {
	w := newWorld(t)
	c2s, s2sLn := listen(t)
	s := w.start(t, "a.test", c2s, s2sLn, "", "alice:x")
	conn, err := net.Dial("tcp", s.c2s)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	io.WriteString(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.test' version='1.0'>`)
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "<host-unknown") || !strings.HasSuffix(string(got), "</stream:stream>") {
		t.Fatalf("the server answered %s", got)
	}
}

func TestLocal(t *testing.T) {
	w := newWorld(t)
	c2s, s2sLn := listen(t)
	s := w.start(t, "a.test", c2s, s2sLn, "", "alice:a", "bob:b")
	alice := mustLogin(t, s, "alice", "a")
	bob := mustLogin(t, s, "bob", "b")

	alice.send(`<message to='bob@a.test' type='chat' id='m1'><body>hi bob</body></message>`)
	m := bob.expect("alice's message", is("message", "chat", "alice@a.test"))
	if m.From != alice.jid.String() || !strings.Contains(string(m.Raw), "hi bob") {
		t.Fatalf("bob got %s", m.Raw)
	}

	// No such user; a user who is offline.
	alice.send(`<message to='nobody@a.test' type='chat' id='m2'><body>?</body></message>`)
	e := alice.expect("an error for nobody", is("message", "error", "nobody@a.test"))
	if c := errorCondition(e); c != "service-unavailable" || e.ID != "m2" {
		t.Fatalf("error %s", e.Raw)
	}

	// Subscription both ways, then presence reaches the subscriber.
	alice.send(`<presence/>`)
	bob.send(`<presence/>`)
	alice.send(`<presence to='bob@a.test' type='subscribe'/>`)
	bob.expect("alice's request", is("presence", "subscribe", "alice@a.test"))
	bob.send(`<presence to='alice@a.test' type='subscribed'/>`)
	alice.expect("bob's approval", is("presence", "subscribed", "bob@a.test"))
	alice.expect("bob's presence after approval", is("presence", "", "bob@a.test"))
	bob.send(`<presence><show>away</show></presence>`)
	p := alice.expect("bob's new presence", is("presence", "", "bob@a.test"))
	if !strings.Contains(string(p.Raw), "away") {
		t.Fatalf("alice got %s", p.Raw)
	}

	// The roster shows the subscription.
	alice.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	r := alice.expect("the roster", is("iq", "result", ""))
	if !strings.Contains(string(r.Raw), `jid="bob@a.test" subscription="to"`) && !strings.Contains(string(r.Raw), `jid='bob@a.test' subscription='to'`) {
		t.Fatalf("roster %s", r.Raw)
	}

	// Directed presence; bob going offline is seen by alice.
	alice.send(`<presence to='bob@a.test'><status>directed</status></presence>`)
	d := bob.expect("directed presence", is("presence", "", "alice@a.test"))
	if !strings.Contains(string(d.Raw), "directed") {
		t.Fatalf("bob got %s", d.Raw)
	}
	bob.sess.Close()
	alice.expect("bob's unavailable", is("presence", "unavailable", "bob@a.test"))
}

func TestServerIQ(t *testing.T) {
	w := newWorld(t)
	c2s, s2sLn := listen(t)
	s := w.start(t, "a.test", c2s, s2sLn, "", "alice:a", "bob:b")
	alice := mustLogin(t, s, "alice", "a")
	for i, tc := range []struct {
		send, typ, want string
	}{
		0: {`<iq to='a.test' type='get' id='i0'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", `category="server" type="im"`},
		1: {`<iq to='a.test' type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>`, "result", ""},
		2: {`<iq to='bob@a.test' type='get' id='i2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", `category="account" type="registered"`},
		3: {`<iq to='a.test' type='get' id='i3'><query xmlns='jabber:iq:version'/></iq>`, "error", "service-unavailable"},
		4: {`<iq to='bob@a.test/nowhere' type='get' id='i4'><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "service-unavailable"},
		5: {`<iq to='bob@a.test' type='get' id='i5'><query xmlns='jabber:iq:roster'/></iq>`, "error", "forbidden"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			alice.send(tc.send)
			id := "i" + strconv.Itoa(i)
			r := alice.expect("the answer", func(st s2s.Stanza) bool { return st.Name == "iq" && st.ID == id })
			if r.Type != tc.typ {
				t.Fatalf("answer %s, want type %s", r.Raw, tc.typ)
			}
			if tc.typ == "error" {
				if c := errorCondition(r); c != tc.want {
					t.Fatalf("answer %s, want %s", r.Raw, tc.want)
				}
			} else if !strings.Contains(strings.ReplaceAll(string(r.Raw), "'", `"`), tc.want) {
				t.Fatalf("answer %s, want %s in it", r.Raw, tc.want)
			}
		})
	}
}

// Two example servers federate on loopback: messages, presence and iq
// both ways, and the errors a client receives for an unknown remote user
// and an unreachable domain.
func TestFederation(t *testing.T) {
	w := newWorld(t)
	ac2s, as2s := listen(t)
	bc2s, bs2s := listen(t)
	dead, _ := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now: connection refused
	for _, mode := range []string{"false", "required_trusted"} {
		t.Run(mode, func(t *testing.T) {
			if mode != "false" {
				ac2s, as2s = listen(t)
				bc2s, bs2s = listen(t)
			}
			extra := func(peer, peerAddr string) string {
				return "use_starttls = \"" + mode + "\"\naddress = [" + address(peer, peerAddr) + ", " + address("dead.test", deadAddr) + "]"
			}
			a := w.start(t, "a.test", ac2s, as2s, extra("b.test", bs2s.Addr().String()), "alice:a")
			b := w.start(t, "b.test", bc2s, bs2s, extra("a.test", as2s.Addr().String()), "bob:b")
			alice := mustLogin(t, a, "alice", "a")
			bob := mustLogin(t, b, "bob", "b")

			alice.send(`<message to='bob@b.test' type='chat' id='f1'><body>over the wire</body></message>`)
			m := bob.expect("alice's message", is("message", "chat", "alice@a.test"))
			if m.From != alice.jid.String() {
				t.Fatalf("from %s, want %s", m.From, alice.jid)
			}
			bob.send(`<message to='` + alice.jid.String() + `' type='chat' id='f2'><body>and back</body></message>`)
			alice.expect("bob's answer", is("message", "chat", "bob@b.test"))

			alice.send(`<presence/>`)
			bob.send(`<presence/>`)
			alice.send(`<presence to='bob@b.test' type='subscribe'/>`)
			bob.expect("alice's request", is("presence", "subscribe", "alice@a.test"))
			bob.send(`<presence to='alice@a.test' type='subscribed'/>`)
			alice.expect("bob's approval", is("presence", "subscribed", "bob@b.test"))
			alice.expect("bob's presence", is("presence", "", "bob@b.test"))

			alice.send(`<iq to='b.test' type='get' id='f3'><ping xmlns='urn:xmpp:ping'/></iq>`)
			alice.expect("b.test's pong", is("iq", "result", "b.test"))

			alice.send(`<message to='nobody@b.test' type='chat' id='f4'><body>?</body></message>`)
			e := alice.expect("the error for nobody@b.test", is("message", "error", "nobody@b.test"))
			if c := errorCondition(e); c != "service-unavailable" || e.ID != "f4" {
				t.Fatalf("error %s", e.Raw)
			}
			alice.send(`<message to='someone@dead.test' type='chat' id='f5'><body>?</body></message>`)
			e = alice.expect("the error for dead.test", is("message", "error", "someone@dead.test"))
			if c := errorCondition(e); c != "remote-server-not-found" || e.ID != "f5" {
				t.Fatalf("error %s", e.Raw)
			}
		})
	}
}

// A client that sends more than a stanza's worth of bytes without ending a
// stanza is cut off: the server stops reading long before the client has
// written it all, so neither the decoder nor ReadStanza holds it.
func TestClientFlood(t *testing.T) {
	w := newWorld(t)
	c2s, s2sLn := listen(t)
	s := w.start(t, "a.test", c2s, s2sLn, "max_stanza_size = 65536", "alice:a")
	alice := mustLogin(t, s, "alice", "a")
	conn := alice.sess.Conn()
	conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, "<message to='alice@a.test'><body>"); err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("a", 1<<20)
	var err error
	written := 0
	for written < 256<<20 && err == nil {
		var n int
		n, err = io.WriteString(conn, chunk)
		written += n
	}
	if err == nil {
		t.Fatalf("the server read all %d bytes of one stanza", written)
	}
	alice.closed()
	t.Logf("cut off after %d bytes written: %v", written, err)
}
