package interop

import (
	"context"
	"errors"

	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// peer is a running real server, as the scenarios drive it.
type peer interface {
	Domain() string
	// PingUs makes the peer send a XEP-0199 ping to ourDomain; it fails
	// the test when the peer cannot even try.
	PingUs(t *testing.T)
	// GotPong waits until the peer received our answer to its ping id.
	GotPong(t *testing.T, id string)
	// Refused waits until the peer reports that its last ping was refused
	// by ourDomain, and returns how it said so.
	Refused(t *testing.T) string
	// VerifiesOverExistingStream says whether the peer sends <db:verify>
	// for our key over its own outgoing stream to us when it has one
	// (Prosody does; ejabberd opens a stream for each verification).
	VerifiesOverExistingStream() bool
	Log() string
}

// scenarios runs the scenarios, in an order that builds on what
// the previous one left: the peer links to us first, so that when we link
// to it, it can verify our key over its existing stream. The first failing
// step ends the sequence, since the later ones depend on it.
func scenarios(t *testing.T, o *ours, p peer, mode string) {
	remote := p.Domain()
	wantTLS := mode != "false"

	if !t.Run("0-incoming", func(t *testing.T) {
		p.PingUs(t)
		got := o.deliveredMatching(t, "the peer's ping", isPing)
		if domainOf(got.From) != remote || got.To != ourDomain {
			t.Fatalf("delivered %s", got.Raw)
		}
		p.GotPong(t, got.ID)
	}) {
		return
	}

	if !t.Run("1-outgoing", func(t *testing.T) {
		o.send(t, "<iq type='get' id='out-ping' from='"+ourDomain+"' to='"+remote+"'><ping xmlns='urn:xmpp:ping'/></iq>")
		pong := o.deliveredMatching(t, "the peer's pong", func(s s2s.Stanza) bool { return s.ID == "out-ping" })
		if pong.Type != "result" || pong.From != remote || pong.To != ourDomain {
			t.Fatalf("pong %s", pong.Raw)
		}
		// No such user: the peer acknowledges the message by bouncing it,
		// which proves it was received, parsed and routed there.
		o.send(t, "<message type='chat' id='out-msg' from='tester@"+ourDomain+"' to='nobody@"+remote+"'><body>hello from Go</body></message>")
		ack := o.deliveredMatching(t, "the peer's answer to our message", func(s s2s.Stanza) bool { return s.ID == "out-msg" })
		if ack.Name != "message" || ack.Type != "error" || ack.From != "nobody@"+remote {
			t.Fatalf("answer %s", ack.Raw)
		}
	}) {
		return
	}

	if !t.Run("2-dialback", func(t *testing.T) {
		out, in := o.links(remote)
		if len(out) != 1 || len(in) != 1 {
			t.Fatalf("links to %s: out %+v, in %+v", remote, out, in)
		}
		for _, l := range append(out, in...) {
			if l.Auth != s2s.AuthDialback {
				t.Errorf("%s link authenticated by %q, want dialback", l.Direction, l.Auth)
			}
			if (l.TLSVersion != 0) != wantTLS {
				t.Errorf("%s link TLS %s with use_starttls = %q", l.Direction, l.TLS(), mode)
			}
		}
		// The counts are per stream; a peer may have replaced its stream
		// meanwhile, so only "carried stanzas" is asserted.
		if out[0].StanzasOut == 0 || in[0].StanzasIn == 0 {
			t.Errorf("stanza counts: out %d, in %d", out[0].StanzasOut, in[0].StanzasIn)
		}
		if p.VerifiesOverExistingStream() {
			// One connection: the peer's stream. It verified our key
			// with a <db:verify> over that stream, not a new one.
			if n := o.ln.accepted.Load(); n != 1 {
				t.Errorf("the peer opened %d connections to us, want 1 (db:verify over its existing stream)", n)
			}
		}
	}) {
		return
	}

	if !t.Run("3-policy-deny", func(t *testing.T) {
		ups := o.linkUps.Load()
		o.reload(t, func(s *config.S2S) { s.DefaultPolicy = "deny" })
		// Reload takes down both links; wait for them to be gone.
		o.waitLinksDown(t, remote, s2s.Outgoing, s2s.Incoming)

		o.send(t, "<iq type='get' id='denied-ping' from='"+ourDomain+"' to='"+remote+"'><ping xmlns='urn:xmpp:ping'/></iq>")
		b := o.nextBounce(t)
		if b.Condition != stanza.PolicyViolation || b.Stanza.ID != "denied-ping" {
			t.Fatalf("bounce %s: %s", b.Condition, b.Text)
		}
		if reply := string(b.Reply()); !strings.Contains(reply, "policy-violation") {
			t.Errorf("bounce reply %s", reply)
		}

		p.PingUs(t)
		e := o.nextAuthFailed(t)
		if e.Link.Direction != s2s.Incoming || domainOf(e.Link.Remote) != remote {
			t.Errorf("AuthFailed for %+v", e.Link)
		}
		var se stanza.Error
		if !errors.As(e.Err, &se) || se.Condition != stanza.PolicyViolation {
			t.Errorf("AuthFailed error %v, want a policy-violation", e.Err)
		}
		how := p.Refused(t)
		t.Logf("the peer says: %s", how)
		if n := o.linkUps.Load(); n != ups {
			t.Errorf("%d links came up while the peer was denied", n-ups)
		}
		if out, in := o.links(remote); len(out)+len(in) != 0 {
			t.Errorf("links while denied: out %+v, in %+v", out, in)
		}
	}) {
		return
	}

	if !t.Run("4-wrong-key", func(t *testing.T) {
		o.reload(t, func(s *config.S2S) { s.DefaultPolicy = "allow" })
		o.keys.broken.Store(true)
		defer o.keys.broken.Store(false)
		o.send(t, "<iq type='get' id='bad-key-ping' from='"+ourDomain+"' to='"+remote+"'><ping xmlns='urn:xmpp:ping'/></iq>")
		b := o.nextBounce(t)
		if b.Stanza.ID != "bad-key-ping" || !errors.Is(b.Err, s2s.ErrAuth) {
			t.Fatalf("bounce %s: %s (err %v), want one caused by s2s.ErrAuth", b.Condition, b.Text, b.Err)
		}
		if !strings.Contains(b.Text, remote) || b.Condition != stanza.RemoteServerNotFound {
			t.Errorf("bounce %s: %q", b.Condition, b.Text)
		}
		t.Logf("our bounce says: %s: %s", b.Condition, b.Text)
		if out, _ := o.links(remote); len(out) != 0 {
			t.Errorf("outgoing link up with a wrong key: %+v", out)
		}
	}) {
		return
	}
}

// domainOf returns the domain part of a JID.
func domainOf(j string) string {
	if i := strings.IndexByte(j, '@'); i >= 0 {
		j = j[i+1:]
	}
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	return j
}

// waitLog waits until the peer's log contains all of parts on one line. A
// log written by another process gives no other signal, so this polls.
func waitLog(t *testing.T, p peer, what string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(p.Log(), "\n") {
			all := true
			for _, s := range parts {
				all = all && strings.Contains(line, s)
			}
			if all {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer's log shows no %s (a line with %q) within %s", what, parts, wait)
		}
		<-tick.C
	}
}

// isPing reports whether s is a XEP-0199 ping.
func isPing(s s2s.Stanza) bool {
	return s.Name == "iq" && s.Type == "get" && strings.Contains(string(s.Raw), "urn:xmpp:ping")
}

func ctlContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), wait)
}
