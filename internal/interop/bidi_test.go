package interop

import (
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

// TestProsodyBidi federates with a Prosody that has mod_s2s_bidi
// (XEP-0288), each side opening the first stream in turn, authenticated by
// SASL EXTERNAL (certificates both sides trust) or by dialback (Prosody's
// certificate from a CA we do not trust, Prosody not requiring ours).
// Stanzas flow both ways each time; where the one stream carries both
// directions, no other long-lived connection exists. The one case that
// needs two is ours with dialback: Prosody verifies our key over a stream
// of its own to us and then routes over that one (TestProsodyBidiFacts).
func TestProsodyBidi(t *testing.T) {
	for _, tc := range []struct {
		name     string
		external bool
		weFirst  bool
		oneConn  bool
	}{
		{name: "we-external", external: true, weFirst: true, oneConn: true},
		{name: "prosody-external", external: true, oneConn: true},
		{name: "prosody-dialback", oneConn: true},
		{name: "we-dialback", weFirst: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Without EXTERNAL on either side (startOurs turns ours off,
			// and Prosody without mod_saslauth neither offers nor uses
			// it), both directions authenticate with dialback.
			c := ProsodyConfig{TLS: "required"}
			mode := "required"
			var tweaks []func(*s2s.Config)
			if tc.external {
				c.SecureAuth, c.SASLExternal, c.CAPEM = true, true, testCA().PEM()
				mode = "required_trusted"
				tweaks = append(tweaks, withSASLExternal)
			}
			o, p := bidiProsody(t, mode, c, tweaks...)
			ping := func(id string) {
				t.Helper()
				o.send(t, "<iq type='get' id='"+id+"' from='"+ourDomain+"' to='"+prosodyDomain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
				pong := o.deliveredMatching(t, "Prosody's pong", func(s s2s.Stanza) bool { return s.ID == id })
				if pong.Type != "result" || pong.From != prosodyDomain {
					t.Fatalf("pong %s", pong.Raw)
				}
			}
			pinged := func() {
				t.Helper()
				p.PingUs(t)
				got := o.deliveredMatching(t, "Prosody's ping", isPing)
				p.GotPong(t, got.ID)
			}
			if tc.weFirst {
				ping("bidi-1")
				pinged()
			} else {
				pinged()
				ping("bidi-1")
			}
			ping("bidi-2")
			out, in := o.links(prosodyDomain)
			if len(out) != 1 || len(in) == 0 {
				t.Fatalf("links: out %+v, in %+v", out, in)
			}
			streams := map[uint64]bool{}
			wantAuth := s2s.AuthDialback
			if tc.external {
				wantAuth = s2s.AuthSASLExternal
			}
			for _, l := range append(out, in...) {
				streams[l.Stream] = true
				t.Logf("our %s link: stream %d, %s, auth %s", l.Direction, l.Stream, l.TLS(), l.Auth)
				if l.TLSVersion == 0 || l.Auth != wantAuth {
					t.Errorf("%s link: %s, auth %s; want TLS and %s", l.Direction, l.TLS(), l.Auth, wantAuth)
				}
			}
			if tc.oneConn && len(streams) != 1 {
				t.Errorf("our links are on %d streams, want one for both directions", len(streams))
			}
			if tc.weFirst && tc.oneConn && o.ln.accepted.Load() != 0 {
				t.Errorf("Prosody opened %d connections to us although our bidi stream carries its stanzas", o.ln.accepted.Load())
			}
			if tc.weFirst {
				piggybackProsody(t, o, p, out[0].Stream, tc.external)
			}
			ctx, cancel := ctlContext()
			defer cancel()
			show, err := p.Shell(ctx, "s2s", "show")
			if err != nil {
				t.Fatalf("%v\n%s", err, show)
			}
			t.Logf("prosodyctl shell s2s show:\n%s", show)
		})
	}
}

// piggybackProsody: Prosody's second domain, both ways. We ping
// chat.prosody.test, then chat.prosody.test pings us and gets our pong.
//
// With shared (our stream authenticated by SASL EXTERNAL, Prosody sending
// over it), the pair is piggybacked on our stream to prosody.test (one
// certificate names both), Prosody verifies the key over a stream of its
// own from that domain, and its pong comes back over ours, where the
// piggybacked pair's reverse is authenticated. After dialback Prosody
// keeps a stream of its own to us, and would send chat.prosody.test's
// answers over that one, where chat.prosody.test never authenticated
// (TestProsodyBidiFactsDialback): there our pair to chat.prosody.test
// opens a stream of its own instead, as without piggybacking.
func piggybackProsody(t *testing.T, o *ours, p *prosodyPeer, stream uint64, shared bool) {
	t.Helper()
	o.send(t, "<iq type='get' id='bidi-more' from='"+ourDomain+"' to='"+prosodyMore+"'><ping xmlns='urn:xmpp:ping'/></iq>")
	pong := o.deliveredMatching(t, prosodyMore+"'s pong", func(s s2s.Stanza) bool { return s.ID == "bidi-more" })
	if pong.Type != "result" || pong.From != prosodyMore {
		t.Fatalf("pong %s", pong.Raw)
	}
	more, _ := o.links(prosodyMore)
	switch {
	case len(more) != 1:
		t.Errorf("our links to %s: %+v", prosodyMore, more)
	case shared && (more[0].Stream != stream || more[0].Auth != s2s.AuthDialback):
		t.Errorf("our link to %s: %+v, want dialback on stream %d", prosodyMore, more, stream)
	case !shared && more[0].Stream == stream:
		t.Errorf("our link to %s is on our stream to %s, over which Prosody does not send", prosodyMore, prosodyDomain)
	}
	if shared {
		waitLog(t, p, "our piggybacked request", "Received[s2sin]: <result", "to='"+prosodyMore+"'")
	}

	done := make(chan pingResult, 1)
	go func() {
		ctx, cancel := ctlContext()
		defer cancel()
		out, err := p.Ping(ctx, prosodyMore, ourDomain)
		done <- pingResult{out, err}
	}()
	got := o.deliveredMatching(t, prosodyMore+"'s ping", func(s s2s.Stanza) bool { return isPing(s) && s.From == prosodyMore })
	t.Logf("%s's ping reached us: %s", prosodyMore, got.Raw)
	if r := <-done; r.err != nil || !strings.Contains(r.out, "pong from "+ourDomain) {
		t.Fatalf("prosodyctl xmpp ping %s %s: %v\n%s", prosodyMore, ourDomain, r.err, r.out)
	}
	for _, l := range o.m.Links() {
		if l.Remote != prosodyMore {
			continue
		}
		// Prosody keeps the stream it verified our key over (SASL
		// EXTERNAL from chat.prosody.test) as a route of its own.
		t.Logf("our %s link with %s: stream %d (ours to %s: %d), auth %s", l.Direction, prosodyMore, l.Stream, prosodyDomain, stream, l.Auth)
		if l.Stream == stream && l.Auth != s2s.AuthDialback {
			t.Errorf("the %s link of the piggybacked pair on our stream: auth %s, want dialback", l.Direction, l.Auth)
		}
	}
}
