package s2s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/faultproxy"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// twoByTwo starts a hosting a1.test and a2.test and b hosting b1.test and
// b2.test, each knowing the other's listener for both its domains.
func twoByTwo(t *testing.T, la, lb *openListener, aOpts, bOpts []nodeOpt) (a, b *node) {
	t.Helper()
	a = newNode(t, la, []string{"a1.test", "a2.test"}, map[string]netip.AddrPort{"b1.test": addrOf(lb), "b2.test": addrOf(lb)}, aOpts...)
	b = newNode(t, lb, []string{"b1.test", "b2.test"}, map[string]netip.AddrPort{"a1.test": addrOf(la), "a2.test": addrOf(la)}, bOpts...)
	return a, b
}

// exchange sends one message from fd to td and waits for it at to.
func exchange(t *testing.T, from, to *node, fd, td string) {
	t.Helper()
	id := fd + ">" + td
	from.send(fmt.Sprintf("<message from='u@%s' to='v@%s' id='%s'/>", fd, td, id))
	if got := to.nextDelivered(); got.ID != id {
		t.Fatalf("%s: delivered %+v", id, got)
	}
}

// TestOneConnectionEightPairs is issue 16's "done when": two Managers
// hosting two domains each exchange messages in all eight combinations of
// (sender domain, receiver domain, direction), and one long-lived
// connection carries them all: a1.test's stream to b1.test, with the other
// three pairs piggybacked on it (XEP-0220) and the four answers coming
// back over it (XEP-0288). The connections b's side opens to verify a's
// dialback keys close once answered. Both Managers list the eight links
// under one Stream.
func TestOneConnectionEightPairs(t *testing.T) {
	for i, tc := range []struct {
		mode     string
		external bool
		noSM     bool
	}{
		{mode: "false"},
		{mode: "false", noSM: true},
		{mode: "required"},
		{mode: "required_trusted", external: true},
	} {
		name := strconv.Itoa(i) + "-" + tc.mode
		if tc.noSM {
			name += "-sm-off"
		}
		t.Run(name, func(t *testing.T) {
			la, lb := newOpenListener(t), newOpenListener(t)
			opts := []nodeOpt{withMode(tc.mode), withConfig(func(c *Config) {
				c.DisableSASLExternal = !tc.external
				c.DisableStreamManagement = tc.noSM
			})}
			a, b := twoByTwo(t, la, lb, opts, opts)
			as, bs := []string{"a1.test", "a2.test"}, []string{"b1.test", "b2.test"}
			for _, ad := range as {
				for _, bd := range bs {
					exchange(t, a, b, ad, bd)
				}
			}
			for _, bd := range bs {
				for _, ad := range as {
					exchange(t, b, a, bd, ad)
				}
			}
			la.waitOpen(t, 0)
			if acc, open := lb.counts(); acc != 1 || open != 1 {
				t.Errorf("b accepted %d connections, %d open; want 1, 1", acc, open)
			}
			for _, n := range []*node{a, b} {
				links := n.m.Links()
				if len(links) != 8 {
					t.Fatalf("%v: %d links, want 8: %+v", n.domains, len(links), links)
				}
				for _, l := range links {
					if l.Stream != links[0].Stream {
						t.Errorf("%v: %s %s-%s on stream %d, want %d", n.domains, l.Direction, l.Local, l.Remote, l.Stream, links[0].Stream)
					}
					if n == a && l.Direction == Outgoing && l.StreamManagement == tc.noSM {
						t.Errorf("%s-%s: StreamManagement %v", l.Local, l.Remote, l.StreamManagement)
					}
				}
			}
		})
	}
}

// TestPiggybackBound: we piggyback at most maxPiggybacked pairs on one
// stream, below the receiving server's bound on dialback requests per
// stream (MaxDialbackPerStream), which would end the stream and every pair
// on it; further pairs open a stream of their own.
func TestPiggybackBound(t *testing.T) {
	defer func(n int32) { maxPiggybacked = n }(maxPiggybacked)
	maxPiggybacked = 2
	la, lb := listen(t), listen(t)
	var bs []string
	peers := map[string]netip.AddrPort{}
	for i := range 5 {
		d := fmt.Sprintf("b%d.test", i)
		bs = append(bs, d)
		peers[d] = addrOf(lb)
	}
	a := newNode(t, la, []string{"a.test"}, peers)
	b := newNode(t, lb, bs, map[string]netip.AddrPort{"a.test": addrOf(la)},
		withConfig(func(c *Config) { c.MaxDialbackPerStream = 3 }))
	for _, d := range bs {
		a.send("<message from='u@a.test' to='v@" + d + "' id='" + d + "'/>")
		if got := b.nextDelivered(); got.ID != d {
			t.Fatalf("delivered %+v", got)
		}
	}
	perStream := map[uint64]int{}
	for _, l := range outgoing(a.m.Links()) {
		perStream[l.Stream]++
	}
	if len(perStream) != 2 {
		t.Errorf("pairs per stream %v, want 3 on one and 2 on another", perStream)
	}
	for s, n := range perStream {
		if n > 1+int(maxPiggybacked) {
			t.Errorf("stream %d carries %d pairs", s, n)
		}
	}
}

// TestPiggybackRefused: b.test's policy denies a2.test. a2.test's pair,
// piggybacked on a1.test's stream, is refused there; a then tries a
// connection of its own, which b refuses too, and the stanza bounces: a
// peer's stream is no way around its policy. a1.test's pairs go on over
// the stream, which the refusal leaves up.
func TestPiggybackRefused(t *testing.T) {
	la, lb := newOpenListener(t), newOpenListener(t)
	a, b := twoByTwo(t, la, lb, nil, []nodeOpt{withS2S(func(s *config.S2S) {
		s.HostPolicy = []config.HostPolicy{{Host: "a2.test", Policy: "deny"}}
	})})
	exchange(t, a, b, "a1.test", "b1.test")
	a.send("<message from='u@a2.test' to='v@b1.test' id='denied'/>")
	bo := a.nextBounce()
	if bo.Stanza.ID != "denied" || !strings.Contains(bo.Text, "policy-violation") {
		t.Fatalf("bounce %s %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
	}
	if acc, _ := lb.counts(); acc != 2 {
		t.Errorf("b accepted %d connections, want 2 (a1.test's stream, a2.test's own attempt)", acc)
	}
	exchange(t, a, b, "a1.test", "b2.test")
	links := outgoing(a.m.Links())
	if len(links) != 2 || links[0].Stream != links[1].Stream {
		t.Errorf("a's links %+v, want a1.test's two on one stream", links)
	}
	select {
	case got := <-b.delivered:
		t.Fatalf("b delivered %s from a denied domain", got.Raw)
	default:
	}
}

// TestPiggybackCertificate: under TLS a pair is piggybacked only on a
// stream whose certificate names its remote domain (RFC 6125, XEP-0220
// §4.4). b's certificate names b1.test alone: a1.test's pair to b2.test
// opens a stream of its own, which under required succeeds and under
// required_trusted fails on the name, exactly as without piggybacking.
func TestPiggybackCertificate(t *testing.T) {
	for i, tc := range []struct {
		mode       string
		wantBounce bool
	}{
		{mode: "required"},
		{mode: "required_trusted", wantBounce: true},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"b1.test"}})
			if err != nil {
				t.Fatal(err)
			}
			la, lb := newOpenListener(t), newOpenListener(t)
			opts := []nodeOpt{withMode(tc.mode)}
			a, b := twoByTwo(t, la, lb, opts, append(opts, withConfig(func(c *Config) { c.Certificate = starttls.StaticCert(leaf.TLS) })))
			exchange(t, a, b, "a1.test", "b1.test")
			if tc.wantBounce {
				a.send("<message from='u@a1.test' to='v@b2.test' id='misnamed'/>")
				bo := a.nextBounce()
				if bo.Stanza.ID != "misnamed" || !errors.Is(bo.Err, starttls.ErrNameMismatch) {
					t.Fatalf("bounce %s %s: %s (%v)", bo.Stanza.ID, bo.Condition, bo.Text, bo.Err)
				}
			} else {
				exchange(t, a, b, "a1.test", "b2.test")
			}
			if acc, _ := lb.counts(); acc != 2 {
				t.Errorf("b accepted %d connections, want 2", acc)
			}
			streams := map[uint64]bool{}
			for _, l := range outgoing(a.m.Links()) {
				streams[l.Stream] = true
			}
			if want := 2; tc.wantBounce {
				want = 1
				if len(streams) != want {
					t.Errorf("a's links on %d streams, want %d", len(streams), want)
				}
			} else if len(streams) != want {
				t.Errorf("a's links on %d streams, want %d", len(streams), want)
			}
		})
	}
}

// TestPiggybackLimits: a piggybacked pair is held to the limits of the
// stream it rides on, both ways. a.test's stanza larger than b's
// max_stanza_size (announced with XEP-0478) is bounced alone, as on a
// stream of the pair's own; b's stanza back over a's bidi stream, larger
// than a's max_stanza_size, ends the stream with policy-violation and is
// never delivered.
func TestPiggybackLimits(t *testing.T) {
	la, lb := newOpenListener(t), newOpenListener(t)
	opts := []nodeOpt{withS2S(func(s *config.S2S) { s.MaxStanzaSize = 2000 })}
	a, b := twoByTwo(t, la, lb, opts, opts)
	exchange(t, a, b, "a1.test", "b1.test")
	exchange(t, a, b, "a1.test", "b2.test")
	big := func(from, to, id string) string {
		return fmt.Sprintf("<message from='u@%s' to='v@%s' id='%s'><body>%s</body></message>", from, to, id, strings.Repeat("x", 3000))
	}
	a.send(big("a1.test", "b2.test", "big-out"))
	if bo := a.nextBounce(); bo.Stanza.ID != "big-out" || bo.Condition != stanza.PolicyViolation {
		t.Fatalf("bounce %s %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
	}
	exchange(t, b, a, "b2.test", "a1.test") // over a's stream (bidi)
	if acc, _ := lb.counts(); acc != 1 {
		t.Fatalf("b accepted %d connections, want 1", acc)
	}
	// Acknowledged before the big one ends the stream: a stanza still
	// unacknowledged then goes again on b's next link (XEP-0198 without
	// resumption) and a delivers it twice, which is not what this test
	// looks at. b asks as its link's owner parks (b0b10d3), a moment
	// after the stanza.
	waitAcked(t, b)
	b.send(big("b2.test", "a1.test", "big-in"))
	for {
		e := waitEvent(t, a, LinkDown)
		if e.Link.Direction != Outgoing {
			continue
		}
		// a's reader ended the stream for the stanza; b sees it end
		// (a's stream error, or its own write failing, whichever
		// comes first).
		if e.Err == nil || !strings.Contains(e.Err.Error(), "policy-violation") || !strings.Contains(e.Err.Error(), "max_stanza_size") {
			t.Errorf("a's link down: %v, want policy-violation for max_stanza_size", e.Err)
		}
		break
	}
	waitEvent(t, b, LinkDown)
	select {
	case got := <-a.delivered:
		t.Fatalf("a delivered %s", got.ID)
	default:
	}
}

// TestPiggybackOff: with Config.DisablePiggyback each pair opens a
// connection of its own.
func TestPiggybackOff(t *testing.T) {
	la, lb := newOpenListener(t), newOpenListener(t)
	opts := []nodeOpt{withConfig(func(c *Config) { c.DisablePiggyback = true })}
	a, b := twoByTwo(t, la, lb, opts, opts)
	exchange(t, a, b, "a1.test", "b1.test")
	exchange(t, a, b, "a1.test", "b2.test")
	exchange(t, a, b, "a2.test", "b1.test")
	if acc, _ := lb.counts(); acc != 3 {
		t.Errorf("b accepted %d connections, want 3", acc)
	}
}

// TestPiggybackProxyFaults: two pairs on one outgoing stream with
// XEP-0198, a.test to b1.test (the stream's own) and a.test to b2.test
// (piggybacked), under steady traffic through a proxy that breaks the
// connection halfway (reset, half-open). The stream's one count of
// acknowledgements covers both pairs; when it dies, each unacknowledged
// stanza goes back to its own pair's link and is written there once more.
// None may be lost, and each is delivered to the domain it was sent to.
func TestPiggybackProxyFaults(t *testing.T) {
	for i, f := range proxyFaults[:2] {
		t.Run(strconv.Itoa(i)+"-"+f.name, func(t *testing.T) {
			lb, la := listen(t), listen(t)
			p, err := faultproxy.New(lb.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			log := newWriteLog()
			clk := newFakeClock()
			probed := make(chan struct{}, 16)
			answered := make(chan struct{}, 1)
			downs := make(chan Event, 16)
			a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b1.test": p.Addr(), "b2.test": p.Addr()},
				withConfig(func(c *Config) {
					c.clock = clk
					c.KeepAlive = proxyKeepAlive
					c.probed = func(pair) { probed <- struct{}{} }
					c.answered = func(pair) {
						select {
						case answered <- struct{}{}:
						default:
						}
					}
					c.Observer = func(e Event) {
						log.observe(e)
						if e.Kind == LinkDown && e.Link.Direction == Outgoing && e.Link.Remote == "b1.test" {
							downs <- e // the stream's own link, whose keepalive it is
						}
					}
				}))
			b := newNode(t, lb, []string{"b1.test", "b2.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)})

			const n, window = 600, 40
			body := strings.Repeat("x", 200)
			to := func(i int) string { return "b" + strconv.Itoa(1+i%2) + ".test" }
			r := proxyRun{n: n, delivered: map[string]int{}, bounced: map[string]int{}}
			take := func(block bool) {
				got := func(s Stanza) {
					if id, _ := strconv.Atoi(s.ID); domainpart(s.To) != to(id) {
						t.Errorf("stanza %s for %s delivered to %s", s.ID, to(id), s.To)
					}
					r.delivered[s.ID]++
				}
				if block {
					select {
					case bo := <-a.bounced:
						r.bounced[bo.Stanza.ID]++
					case s := <-b.delivered:
						got(s)
					case <-log.progress:
					case <-time.After(wait):
						t.Fatalf("no progress: %d written, %d delivered, %d bounced", len(log.snapshot()), len(r.delivered), len(r.bounced))
					}
				}
				for {
					select {
					case bo := <-a.bounced:
						r.bounced[bo.Stanza.ID]++
					case s := <-b.delivered:
						got(s)
					default:
						return
					}
				}
			}
			send := func(i int) {
				a.send(fmt.Sprintf(`<message from='a.test' to='u@%s' id='%d'><body>%s</body></message>`, to(i), i, body))
			}
			// Both links up, on one stream with SM, before the fault.
			for i := range 2 {
				send(i)
				for len(r.delivered) <= i {
					take(true)
				}
			}
			l := outgoing(a.m.Links())
			if len(l) != 2 || l[0].Stream != l[1].Stream || !l[0].StreamManagement || !l[1].StreamManagement {
				t.Fatalf("links before the fault: %+v", l)
			}
			for i := 2; i < n; i++ {
				for i-len(log.snapshot())-len(r.bounced) > window {
					take(true)
				}
				send(i)
				if i == n/2 && f.silent {
					// Everything the peer sent before the silence is
					// read first: an acknowledgement still on its way
					// to a's reader when the clock moves would count as
					// a sign of life after the silence began, and the
					// keepalive would rightly take an interval more.
					quiet(t, a, answered, func() bool { return len(r.delivered) > i }, take)
				}
				if i == n/2 {
					if hit := f.inject(p, faultproxy.Up); hit == 0 {
						t.Fatalf("%s hit no connection", f.name)
					}
				}
				if f.silent && i == n/2+window/2 {
					detect(t, clk, probed, downs)
				}
				take(false)
			}
			for len(r.delivered)+len(r.bounced) < n {
				take(true)
			}
			r.settle(t, a, b, a, log, take)
			r.report(t, true)
		})
	}
}

// TestPiggybackReloadDeniesReverse: a.test's pair to b2.test was
// piggybacked on its bidi stream to b1.test, and b2.test sends back over
// it. a's link to b2.test goes idle and leaves the stream, which lives on
// for b1.test's pair. When a's Reload then denies b2.test, the stream is
// closed, so that b2.test cannot go on sending over it: its next stanza
// needs a connection of its own, which a refuses.
func TestPiggybackReloadDeniesReverse(t *testing.T) {
	clk := newFakeClock()
	la, lb := newOpenListener(t), newOpenListener(t)
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b1.test": addrOf(lb), "b2.test": addrOf(lb)},
		withConfig(func(c *Config) { c.clock = clk; c.KeepAlive = -1 }))
	b := newNode(t, lb, []string{"b1.test", "b2.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)})
	exchange(t, a, b, "a.test", "b1.test")
	exchange(t, a, b, "a.test", "b2.test")
	exchange(t, b, a, "b2.test", "a.test")
	clk.Advance(6 * time.Minute)
	exchange(t, a, b, "a.test", "b1.test")
	clk.Advance(5 * time.Minute) // b2.test's link idle, b1.test's not
	for {
		e := waitEvent(t, a, LinkDown)
		if e.Link.Direction == Outgoing && e.Link.Remote == "b2.test" {
			if !errors.Is(e.Err, ErrIdle) {
				t.Fatalf("a's link to b2.test down: %v", e.Err)
			}
			break
		}
	}
	if l := outgoing(a.m.Links()); len(l) != 1 || l[0].Remote != "b1.test" {
		t.Fatalf("a's links %+v, want b1.test's alone", l)
	}
	exchange(t, b, a, "b2.test", "a.test") // still over a's stream
	if acc, _ := lb.counts(); acc != 1 {
		t.Fatalf("b accepted %d connections, want 1", acc)
	}
	a.reload(func(s *config.S2S) { s.HostPolicy = []config.HostPolicy{{Host: "b2.test", Policy: "deny"}} })
	for {
		e := waitEvent(t, b, LinkDown)
		if e.Link.Direction == Outgoing && e.Link.Local == "b2.test" {
			break
		}
	}
	b.send("<message from='u@b2.test' to='v@a.test' id='after'/>")
	if bo := b.nextBounce(); bo.Stanza.ID != "after" || !strings.Contains(bo.Text, "policy-violation") {
		t.Fatalf("b's bounce %s %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
	}
	select {
	case got := <-a.delivered:
		t.Fatalf("a delivered %s from a denied domain", got.Raw)
	default:
	}
	exchange(t, a, b, "a.test", "b1.test") // b1.test is still allowed, on a new stream
}

// TestPiggybackAgain: a pair the peer accepted on a stream, whose link
// went idle and left it while the stream lived on, takes the stream again
// without a second request: b allows two dialback requests per stream
// (MaxDialbackPerStream), a.test to b1.test's and a.test to b2.test's, and
// a third would end the stream.
func TestPiggybackAgain(t *testing.T) {
	clk := newFakeClock()
	la, lb := newOpenListener(t), newOpenListener(t)
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b1.test": addrOf(lb), "b2.test": addrOf(lb)},
		withConfig(func(c *Config) { c.clock = clk; c.KeepAlive = -1 }))
	b := newNode(t, lb, []string{"b1.test", "b2.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)},
		withConfig(func(c *Config) { c.MaxDialbackPerStream = 2 }))
	exchange(t, a, b, "a.test", "b1.test")
	exchange(t, a, b, "a.test", "b2.test")
	clk.Advance(6 * time.Minute)
	exchange(t, a, b, "a.test", "b1.test")
	clk.Advance(5 * time.Minute) // b2.test's link idle, b1.test's not
	for {
		e := waitEvent(t, a, LinkDown)
		if e.Link.Direction == Outgoing && e.Link.Remote == "b2.test" {
			break
		}
	}
	exchange(t, a, b, "a.test", "b2.test")
	exchange(t, b, a, "b2.test", "a.test")
	links := outgoing(a.m.Links())
	if len(links) != 2 || links[0].Stream != links[1].Stream {
		t.Errorf("a's links %+v, want both on one stream", links)
	}
	if acc, open := lb.counts(); acc != 1 || open != 1 {
		t.Errorf("b accepted %d connections, %d open; want 1, 1", acc, open)
	}
}

// quiet waits until every stanza sent so far was delivered (done) and the
// peer acknowledged everything a's links wrote, each wait woken by a
// delivery or an acknowledgement.
func quiet(t *testing.T, a *node, answered <-chan struct{}, done func() bool, take func(bool)) {
	t.Helper()
	for !done() {
		take(true)
	}
	for {
		unacked := 0
		for _, l := range outgoing(a.m.Links()) {
			unacked = max(unacked, l.Unacked)
		}
		if unacked == 0 {
			return
		}
		select {
		case <-answered:
		case <-time.After(wait):
			t.Fatalf("%d stanzas still unacknowledged", unacked)
		}
	}
}

// TestPiggybackPeerOwnStream: a server that sends to us over a stream of
// its own (here b, with bidi off) may route another of its domains'
// answers over that stream, where that domain never authenticated (Prosody
// does, after dialback): a's pair to b2.test is then not piggybacked on
// a's stream to b1.test but opens its own. A new local domain of a's to
// b1.test still is.
func TestPiggybackPeerOwnStream(t *testing.T) {
	la, lb := newOpenListener(t), newOpenListener(t)
	a, b := twoByTwo(t, la, lb, nil, []nodeOpt{withConfig(func(c *Config) { c.DisableBidi = true })})
	exchange(t, a, b, "a1.test", "b1.test")
	exchange(t, b, a, "b1.test", "a1.test") // over a stream of b's own
	exchange(t, a, b, "a1.test", "b2.test")
	exchange(t, a, b, "a2.test", "b1.test")
	streams := map[string]uint64{}
	for _, l := range outgoing(a.m.Links()) {
		streams[l.Local+">"+l.Remote] = l.Stream
	}
	if s := streams["a1.test>b1.test"]; s == 0 || streams["a1.test>b2.test"] == s || streams["a2.test>b1.test"] != s {
		t.Errorf("a's links by stream %v, want a2.test's on a1.test's stream to b1.test and b2.test's on its own", streams)
	}
}

// TestPiggybackNotOnClosingStream: the last link on a stream lets go of it
// (idle) and is writing </stream:stream> when a pair the peer accepted on
// it before comes back: that pair does not take the stream (its count
// never rises from 0 again), since what it wrote there would follow our
// close and, without XEP-0198, count as written and be lost.
func TestPiggybackNotOnClosingStream(t *testing.T) {
	m := &Manager{clock: realClock{}}
	c1, c2 := net.Pipe()
	defer c2.Close()
	oc := &outConn{conn: c1, ob: dialback.NewOutbound(nil, "s1"), done: make(chan struct{}), writeTimeout: wait,
		p: pair{"a.test", "b.test"}, dialback: true}
	oc.refs.Store(1)
	if err := oc.valid.Add("a2.test", "b.test"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		oc.close(true, nil) // the owner, idle
		close(closed)
	}()
	// One byte of </stream:stream> read: the owner let go and is writing
	// its close, the rest waiting for this reader.
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	v, err := oc.piggyback(context.Background(), m, pair{"a2.test", "b.test"})
	if err == nil {
		t.Errorf("a pair took a stream being closed (refs %d)", oc.refs.Load())
		v.close(false, nil)
	}
	go io.Copy(io.Discard, c2)
	<-closed
	if n := oc.refs.Load(); n != 0 {
		t.Errorf("refs %d after the close", n)
	}
}

// TestCloseAfterSharedBatch: on a stream two links share, </stream:stream>
// from one never lands between the flushes of the other's batch: it waits
// for the batch, and the peer reads every stanza of it whole before the
// close.
func TestCloseAfterSharedBatch(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	oc := &outConn{conn: c1, ob: dialback.NewOutbound(nil, "s1"), done: make(chan struct{}), writeTimeout: wait}
	oc.refs.Store(2)
	_, wrote := writingBatch(t, oc, c2)
	closed := make(chan struct{})
	go func() {
		oc.close(true, errors.New("the other link fails the stream"))
		close(closed)
	}()
	rest, _ := io.ReadAll(c2) // until the close closes the connection
	if err := <-wrote; err != nil {
		t.Fatalf("the batch: %v", err)
	}
	<-closed
	end := bytes.Index(rest, []byte("</stream:stream>"))
	if end < 0 || bytes.Count(rest[:end], []byte("</message>")) != 3 {
		t.Errorf("the close came after %d of the batch's 3 stanzas", bytes.Count(rest[:max(end, 0)], []byte("</message>")))
	}
}

// writingBatch starts oc writing a batch of three stanzas of more than half
// the writer's buffer each (a flush before each of the last two) and
// returns once the first flush began, as read from peer, the other end of
// oc's connection; wrote gets the write's error.
func writingBatch(t *testing.T, oc *outConn, peer net.Conn) (batch []Stanza, wrote chan error) {
	t.Helper()
	pad := strings.Repeat("x", wire.DefaultWriterSize/2+1)
	for i := range 3 {
		s, err := ParseStanza([]byte(fmt.Sprintf("<message from='u@a.test' to='v@b.test' id='m%d'><body>%s</body></message>", i, pad)))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, s)
	}
	wrote = make(chan error, 1)
	go func() {
		_, err := oc.writeBatch(nil, batch)
		wrote <- err
	}()
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return batch, wrote
}
