package s2s

import (
	"context"
	"encoding/xml"
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
	"github.com/xmpp-s2s/federation/internal/wire"
)

// rawServer is a remote server written by hand that accepts one stream of
// our Manager's, offers bidi (or not), accepts its dialback request
// without asking anyone, and then lets the test write what our Manager
// would never be sent by a well-behaved peer.
type rawServer struct {
	t    *testing.T
	ln   net.Listener
	conn net.Conn
	r    *wire.Reader
	// asked: our Manager sent <bidi xmlns='urn:xmpp:bidi'/>.
	asked bool
}

func newRawServer(t *testing.T) *rawServer {
	return &rawServer{t: t, ln: listen(t)}
}

// accept takes our Manager's stream as domain, listing bidi when offer is
// set, and answers its dialback request with valid.
func (s *rawServer) accept(domain string, offer bool) {
	s.t.Helper()
	feats := [][]byte{dialbackFeature}
	if offer {
		feats = append(feats, bidiFeature)
	}
	s.acceptWith(domain, feats...)
}

// acceptWith is accept listing feats.
func (s *rawServer) acceptWith(domain string, feats ...[]byte) {
	t := s.t
	t.Helper()
	conn, err := s.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wait))
	s.conn = conn
	s.r = wire.NewReader(conn, wire.DefaultLimits)
	h, err := s.r.ReadHeader()
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	s.write(headerString(domain, h.From)[:len(headerString(domain, h.From))-1] + " id='raw-id'>")
	var b writerBuf
	wire.WriteFeatures(&b, feats...)
	s.write(string(b))
	for {
		e, err := s.r.Next()
		if err != nil {
			t.Fatalf("waiting for dialback: %v", err)
		}
		switch e.Name {
		case xml.Name{Space: nsBidi, Local: "bidi"}:
			s.asked = true
			continue
		case xml.Name{Space: dialback.NS, Local: "result"}:
			s.write(fmt.Sprintf("<db:result from='%s' to='%s' type='valid'/>", e.To, e.From))
			conn.SetDeadline(time.Time{})
			return
		}
		t.Fatalf("unexpected %s", e.Raw)
	}
}

func (s *rawServer) write(raw string) {
	s.t.Helper()
	if _, err := io.WriteString(s.conn, raw); err != nil {
		s.t.Fatal(err)
	}
}

// next reads our Manager's next element.
func (s *rawServer) next() (wire.Element, error) {
	s.conn.SetReadDeadline(time.Now().Add(wait))
	return s.r.Next()
}

// rawServerNode starts a.test, reaching r.test at a rawServer.
func rawServerNode(t *testing.T, opts ...nodeOpt) (*node, *rawServer) {
	t.Helper()
	s := newRawServer(t)
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"r.test": addrOf(s.ln)}, opts...)
	return a, s
}

// TestOutgoingBidi: when the peer offers bidi, our outgoing stream asks
// for it and then delivers the peer's stanzas for the reverse of our pair,
// and nothing else: another pair, a stanza over max_stanza_size, or any
// stanza on a stream that is not bidirectional ends the stream.
func TestOutgoingBidi(t *testing.T) {
	const big = 2000
	for i, tc := range []struct {
		name        string
		offer       bool
		disable     bool
		stanza      string
		wantAsked   bool
		wantDeliver bool
		wantErr     string // in the LinkDown error
	}{
		{name: "reverse pair", offer: true, stanza: "<message from='x@r.test' to='y@a.test' id='back'/>", wantAsked: true, wantDeliver: true},
		{name: "reverse pair, other case", offer: true, stanza: "<message from='x@R.Test' to='y@A.TEST' id='back'/>", wantAsked: true, wantDeliver: true},
		{name: "another sender", offer: true, stanza: "<message from='x@evil.test' to='y@a.test' id='spoof'/>", wantAsked: true, wantErr: "invalid-from"},
		{name: "another target", offer: true, stanza: "<message from='x@r.test' to='y@other.test' id='spoof'/>", wantAsked: true, wantErr: "invalid-from"},
		{name: "our own direction", offer: true, stanza: "<message from='y@a.test' to='x@r.test' id='spoof'/>", wantAsked: true, wantErr: "invalid-from"},
		{name: "no from", offer: true, stanza: "<message to='y@a.test' id='anon'/>", wantAsked: true, wantErr: "improper-addressing"},
		{name: "nested deeper than MaxDepth", offer: true, stanza: "<message from='x@r.test' to='y@a.test' id='deep'>" + strings.Repeat("<x>", 70) + strings.Repeat("</x>", 70) + "</message>", wantAsked: true, wantErr: "policy-violation"},
		{name: "not well-formed", offer: true, stanza: "<message from='x@r.test' to='y@a.test' id='bad'><a></b></message>", wantAsked: true, wantErr: "not-well-formed"},
		{name: "over max_stanza_size", offer: true, stanza: "<message from='x@r.test' to='y@a.test' id='big'><body>" + strings.Repeat("x", big) + "</body></message>", wantAsked: true, wantErr: "policy-violation"},
		{name: "not offered", offer: false, stanza: "<message from='x@r.test' to='y@a.test' id='back'/>", wantErr: "unsupported-stanza-type"},
		{name: "turned off", offer: true, disable: true, stanza: "<message from='x@r.test' to='y@a.test' id='back'/>", wantErr: "unsupported-stanza-type"},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.name, func(t *testing.T) {
			a, s := rawServerNode(t, withConfig(func(c *Config) { c.DisableBidi = tc.disable }),
				withS2S(func(c *config.S2S) { c.MaxStanzaSize = big }))
			a.send("<message from='y@a.test' to='x@r.test' id='out'/>")
			s.accept("r.test", tc.offer)
			if s.asked != tc.wantAsked {
				t.Errorf("asked for bidi: %v, want %v", s.asked, tc.wantAsked)
			}
			if e, err := s.next(); err != nil || e.ID != "out" {
				t.Fatalf("our stanza: %v %s", err, e.Raw)
			}
			s.write(tc.stanza)
			if tc.wantDeliver {
				got := a.nextDelivered()
				if got.ID != "back" || got.From != "x@r.test" || got.To != "y@a.test" {
					t.Fatalf("delivered %+v", got)
				}
				e := waitEvent(t, a, StanzaIn)
				if e.Link.Direction != Incoming || e.Link.Local != "a.test" || e.Link.Remote != "r.test" || e.Link.StanzasIn != 1 {
					t.Errorf("StanzaIn link %+v", e.Link)
				}
				// The stream still carries our direction.
				a.send("<message from='y@a.test' to='x@r.test' id='out2'/>")
				if e, err := s.next(); err != nil || e.ID != "out2" {
					t.Fatalf("our second stanza: %v %s", err, e.Raw)
				}
				return
			}
			down := waitEvent(t, a, LinkDown)
			if down.Err == nil || !strings.Contains(down.Err.Error(), tc.wantErr) {
				t.Errorf("LinkDown error %v, want one saying %s", down.Err, tc.wantErr)
			}
			select {
			case got := <-a.delivered:
				t.Fatalf("delivered %s", got.Raw)
			default:
			}
			// Our Manager ended the stream with that stream error.
			for {
				_, err := s.next()
				if err == nil {
					continue
				}
				var pe *wire.PeerError
				if !errors.As(err, &pe) || pe.Err.Err != tc.wantErr {
					t.Errorf("the stream ended with %v, want stream error %s", err, tc.wantErr)
				}
				break
			}
		})
	}
}

// TestBidiRequestNotOffered: a <bidi/> request on a stream that did not
// offer it (bidi turned off) is an element we do not handle.
func TestBidiRequestNotOffered(t *testing.T) {
	b := authorityFor(t, []string{"x.test"}, withConfig(func(c *Config) { c.DisableBidi = true }))
	p := dialRaw(t, b, "x.test", "b.test")
	p.write("<bidi xmlns='urn:xmpp:bidi'/>")
	if cond := p.streamError(); cond != "unsupported-stanza-type" {
		t.Fatalf("stream error %q", cond)
	}
}

// TestBidiOffer: which incoming streams list bidi.
func TestBidiOffer(t *testing.T) {
	for i, tc := range []struct {
		mode    string
		disable bool
		want    bool
	}{
		{mode: "false", want: true},
		{mode: "optional", want: true}, // before TLS, when TLS is not required
		{mode: "required", want: false},
		{mode: "false", disable: true, want: false},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			b := newNode(t, listen(t), []string{"b.test"}, nil, withMode(tc.mode),
				withConfig(func(c *Config) { c.DisableBidi = tc.disable }))
			conn, err := net.Dial("tcp", b.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			io.WriteString(conn, headerString("x.test", "b.test"))
			r := wire.NewReader(conn, wire.DefaultLimits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			e, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			feats, err := wire.ParseFeatures(e)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, f := range feats {
				got = got || f.Name == bidiEntry.name
			}
			if got != tc.want {
				t.Errorf("bidi listed: %v, want %v (%s)", got, tc.want, e.Raw)
			}
		})
	}
}

// TestBidiOneConnection: a.test links to b.test; b.test's stanzas for
// a.test then travel back over a.test's stream, with no connection of
// b.test's own but the one that verifies a.test's dialback key (which
// closes once answered). Both Managers list the two directions of the
// pair under one Stream.
func TestBidiOneConnection(t *testing.T) {
	for i, tc := range []struct {
		mode     string
		external bool
	}{
		{mode: "false"},
		{mode: "required"},
		{mode: "required_trusted", external: true},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			la, lb := newOpenListener(t), newOpenListener(t)
			opts := []nodeOpt{withMode(tc.mode), withConfig(func(c *Config) { c.DisableSASLExternal = !tc.external })}
			a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)}, opts...)
			b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, opts...)
			for round := range 3 {
				a.send(fmt.Sprintf("<message from='alice@a.test' to='bob@b.test' id='ab%d'/>", round))
				if got := b.nextDelivered(); got.ID != fmt.Sprintf("ab%d", round) {
					t.Fatalf("b got %+v", got)
				}
				b.send(fmt.Sprintf("<message from='bob@b.test' to='alice@a.test' id='ba%d'/>", round))
				if got := a.nextDelivered(); got.ID != fmt.Sprintf("ba%d", round) {
					t.Fatalf("a got %+v", got)
				}
			}
			// One long-lived connection, a.test's; b.test's only one, if
			// any, verified a.test's key and is gone.
			la.waitOpen(t, 0)
			if acc, open := lb.counts(); acc != 1 || open != 1 {
				t.Errorf("b.test accepted %d connections, %d open; want 1, 1", acc, open)
			}
			if acc, _ := la.counts(); tc.external && acc != 0 || acc > 1 {
				t.Errorf("a.test accepted %d connections (EXTERNAL: %v)", acc, tc.external)
			}
			want := AuthDialback
			if tc.external {
				want = AuthSASLExternal
			}
			for _, n := range []*node{a, b} {
				links := n.m.Links()
				if len(links) != 2 || links[0].Direction != Outgoing || links[1].Direction != Incoming {
					t.Fatalf("%v links = %+v", n.domains, links)
				}
				if links[0].Stream == 0 || links[0].Stream != links[1].Stream {
					t.Errorf("%v: the two directions on streams %d and %d", n.domains, links[0].Stream, links[1].Stream)
				}
				for _, l := range links {
					if l.Auth != want || (l.TLSVersion != 0) != (tc.mode != "false") {
						t.Errorf("%v link %+v: auth %s, tls %s", n.domains, l, l.Auth, l.TLS())
					}
				}
			}
			if in := a.m.Links()[1]; in.StanzasIn != 3 {
				t.Errorf("a.test's incoming pair delivered %d stanzas, want 3", in.StanzasIn)
			}
		})
	}
}

// outgoing returns the outgoing links of links. Since bidi is on by
// default, a Manager that linked to a peer also lists the reverse pair of
// that stream, as an incoming link on the same Stream.
func outgoing(links []LinkInfo) []LinkInfo {
	var out []LinkInfo
	for _, l := range links {
		if l.Direction == Outgoing {
			out = append(out, l)
		}
	}
	return out
}

// TestBidiReloadDeniesReceiver: the server that answers over the peer's
// bidi stream denies the peer at run time. Its answers over that stream
// stop with the stream (Reload closes it), its next stanza bounces with
// policy-violation, and the peer's new attempt is refused: bidi leaves no
// way around the policy in either direction.
func TestBidiReloadDeniesReceiver(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	a.send(msgAB)
	b.nextDelivered()
	b.send(msgBA)
	a.nextDelivered()
	if l := b.m.Links(); len(l) != 2 || l[0].Stream != l[1].Stream {
		t.Fatalf("b links %+v", l)
	}
	b.denyBoth("a.test", "")
	waitEvent(t, a, LinkDown)
	waitEvent(t, a, LinkDown)
	if l := b.m.Links(); len(l) != 0 {
		t.Fatalf("b's links after reload %+v", l)
	}
	b.send(msgBA)
	if bo := b.nextBounce(); bo.Condition != stanza.PolicyViolation {
		t.Fatalf("b's bounce %s: %s", bo.Condition, bo.Text)
	}
	a.send(msgAB)
	if bo := a.nextBounce(); !strings.Contains(bo.Text, "policy-violation") {
		t.Fatalf("a's bounce %s: %s", bo.Condition, bo.Text)
	}
	select {
	case got := <-b.delivered:
		t.Fatalf("b delivered %s while denying a.test", got.Raw)
	case got := <-a.delivered:
		t.Fatalf("a delivered %s", got.Raw)
	default:
	}
}

// TestBidiAnswerBeforeReverse: on an incoming bidi stream, our links may
// write back for the reverse of a pair only once the peer was told the
// pair is accepted. A stanza of ours sent between the pair's registration
// and our <db:result type='valid'/> reached the peer while it waited for
// that answer, and a peer of ours failed its negotiation with "sent
// <message> before answering dialback" (TestBidiSimultaneousFirstStreams,
// a few runs in a hundred under load). Here a stanza for the reverse pair
// is sent at exactly that moment: it must go out some other way (a
// connection of its own to x.test's server), and the peer reads the answer
// first.
func TestBidiAnswerBeforeReverse(t *testing.T) {
	la, lb := listen(t), listen(t)
	x := newNode(t, la, []string{"x.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	var b *node
	sent := make(chan struct{})
	b = newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la)},
		withConfig(func(c *Config) {
			c.answering = func(p pair) {
				if p != (pair{"b.test", "x.test"}) {
					return
				}
				defer close(sent)
				// Sent while the answer waits: delivered to x.test, by
				// whatever way the link finds.
				b.send("<message from='b.test' to='u@x.test' id='early'/>")
				if got := x.nextDelivered(); got.ID != "early" {
					t.Errorf("x.test got %s", got.ID)
				}
			}
		}))
	p := dialRaw(t, b, "x.test", "b.test")
	p.write("<bidi xmlns='urn:xmpp:bidi'/>")
	// result fails the test on anything but dialback before its answer.
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("x.test → b.test: %s", typ)
	}
	<-sent
	// Once answered, the stream carries the reverse pair: b.test's links
	// find it (routeBack runs right after the answer's write).
	deadline := time.Now().Add(wait)
	for b.m.bidiRoute(pair{"b.test", "x.test"}) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the answered pair's stream is not a route for its reverse")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReaderCount: the reader's count of what the peer sends back keeps
// the last reverse pair's counter, and still counts each pair on its own
// when they alternate; a pair that is not a reverse pair of the stream
// counts nowhere.
func TestReaderCount(t *testing.T) {
	oc := &outConn{}
	oc.addReverse(pair{"a.test", "b.test"})
	oc.addReverse(pair{"a2.test", "b.test"})
	for _, p := range []pair{{"a.test", "b.test"}, {"a.test", "b.test"}, {"a2.test", "b.test"}, {"a.test", "b.test"}, {"x.test", "b.test"}, {"a2.test", "b.test"}} {
		oc.readerCount(p.local, p.remote).Add(1)
	}
	for _, c := range []struct {
		p    pair
		want uint64
	}{{pair{"a.test", "b.test"}, 3}, {pair{"a2.test", "b.test"}, 2}, {pair{"x.test", "b.test"}, 0}} {
		if got := oc.reverseCount(c.p.local, c.p.remote).Load(); got != c.want {
			t.Errorf("%v: counted %d, want %d", c.p, got, c.want)
		}
	}
}

// TestViewWriteAfterPeerClose: a link writing back over an incoming bidi
// stream that the peer has just closed (the reader answered its
// </stream:stream>, and has not told the links yet) learns that the peer
// closed the stream, a clean close, as the stream's end says a moment
// later; not that its write found a closed connection, which the link
// reports as a lost link (a warning). A stream we closed ourselves is
// still closed to it.
func TestViewWriteAfterPeerClose(t *testing.T) {
	for _, peer := range []bool{true, false} {
		m := &Manager{clock: realClock{}, cfg: Config{QueueLength: 10, WriteTimeout: time.Second}}
		ours, theirs := net.Pipe()
		go io.Copy(io.Discard, theirs)
		s := &inStream{ep: &epoch{open: true}}
		s.m, s.conn = m, ours
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if peer {
			if err := s.readFailed(io.EOF); err != nil {
				t.Fatalf("the peer's close: %v", err)
			}
		} else {
			s.closeStream(nil)
		}
		st, err := ParseStanza([]byte("<message from='u@b.test' to='v@a.test'/>"))
		if err != nil {
			t.Fatal(err)
		}
		v := &inView{s: s, pair: pair{"b.test", "a.test"}}
		_, err = v.writeBatch(nil, []Stanza{st})
		switch {
		case peer && !errors.Is(err, ErrPeerClosed):
			t.Errorf("write after the peer's close: %v, want ErrPeerClosed", err)
		case !peer && (errors.Is(err, ErrPeerClosed) || !errors.Is(err, net.ErrClosed)):
			t.Errorf("write after our close: %v, want net.ErrClosed", err)
		}
		theirs.Close()
	}
}
