package s2s

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// waitLinks polls n's links until ok accepts them (the figures of a link
// change as acknowledgements arrive, on the stream's goroutine).
func waitLinks(t *testing.T, n *node, what string, ok func([]LinkInfo) bool) []LinkInfo {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		links := n.m.Links()
		if ok(links) {
			return links
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: links %+v", what, links)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func linkOf(links []LinkInfo, dir Direction, local, remote string) (LinkInfo, bool) {
	for _, l := range links {
		if l.Direction == dir && l.Local == local && l.Remote == remote {
			return l, true
		}
	}
	return LinkInfo{}, false
}

// TestBidiReverseAcknowledged: b.test's stanzas back over a.test's bidi
// stream are acknowledged by a.test (XEP-0198 in the reverse direction):
// b.test's link on that stream has StreamManagement and nothing stays
// unacknowledged; a.test counts the incoming pair it carries as with SM.
func TestBidiReverseAcknowledged(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprint("external=", external), func(t *testing.T) {
			mode := "required"
			if external {
				mode = "required_trusted"
			}
			opts := []nodeOpt{withMode(mode), withConfig(func(c *Config) { c.DisableSASLExternal = !external })}
			a, b := pairNodes(t, opts, opts)
			a.send("<message from='alice@a.test' to='bob@b.test' id='ab'/>")
			if got := b.nextDelivered(); got.ID != "ab" {
				t.Fatalf("b got %+v", got)
			}
			const n = 50
			for i := range n {
				b.send(fmt.Sprintf("<message from='bob@b.test' to='alice@a.test' id='ba%d'/>", i))
			}
			for i := range n {
				if got := a.nextDelivered(); got.ID != fmt.Sprintf("ba%d", i) {
					t.Fatalf("a got %+v, want ba%d", got, i)
				}
			}
			links := waitLinks(t, b, "b.test's reverse link acknowledged", func(ls []LinkInfo) bool {
				l, ok := linkOf(ls, Outgoing, "b.test", "a.test")
				return ok && l.StreamManagement && l.Unacked == 0 && l.StanzasOut == n
			})
			out, _ := linkOf(links, Outgoing, "b.test", "a.test")
			in, _ := linkOf(links, Incoming, "b.test", "a.test")
			if out.Stream != in.Stream {
				t.Errorf("b.test's link back is on stream %d, a.test's stream is %d", out.Stream, in.Stream)
			}
			if rev, ok := linkOf(a.m.Links(), Incoming, "a.test", "b.test"); !ok || !rev.StreamManagement || rev.StanzasIn != n {
				t.Errorf("a.test's incoming pair on its own stream: %+v", rev)
			}
		})
	}
}

// revPeer is a hand-driven initiating server that authenticates two
// pairs by dialback on one bidi stream to b.test, enables XEP-0198, and
// then reads what b.test's links write back, acknowledging only what the
// test says.
type revPeer struct {
	*rawPeer
	n int // stanzas read since <enabled/>
}

func dialRevPeer(t *testing.T, b *node, from ...string) *revPeer {
	t.Helper()
	p := dialRaw(t, b, from[0], "b.test")
	p.write("<bidi xmlns='urn:xmpp:bidi'/>")
	for _, f := range from {
		if typ := p.result(rawSecret, f, "b.test"); typ != dialback.Valid {
			t.Fatalf("%s → b.test: %s", f, typ)
		}
	}
	p.write(string(sm.Enable))
	for {
		e, err := p.r.Next()
		if err != nil {
			t.Fatalf("waiting for <enabled/>: %v", err)
		}
		if e.Name.Space == sm.NS && e.Name.Local == "enabled" {
			break
		}
	}
	return &revPeer{rawPeer: p}
}

// stanzas reads n stanzas, answering no <r/>.
func (p *revPeer) stanzas(n int) []string {
	p.t.Helper()
	var ids []string
	for len(ids) < n {
		p.conn.SetReadDeadline(time.Now().Add(wait))
		e, err := p.r.Next()
		if err != nil {
			p.t.Fatalf("after %v: %v", ids, err)
		}
		if e.Name.Space == wire.NSServer {
			ids = append(ids, e.ID)
			p.n++
		}
	}
	return ids
}

// TestBidiReverseHandBack: two pairs, x.test → b.test and y.test → b.test,
// authenticated on one incoming bidi stream that enabled XEP-0198; b.test's
// links back to both write on it. The peer acknowledges the first stanza
// only, then the connection breaks: each unacknowledged stanza goes back
// to its own pair's link, which resends it on a connection of its own (to
// the domains' real server), marked resent; the acknowledged one is not
// sent again.
func TestBidiReverseHandBack(t *testing.T) {
	la, lb := listen(t), listen(t)
	xy := newNode(t, la, []string{"x.test", "y.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	resent := make(chan string, 16)
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la), "y.test": addrOf(la)},
		withConfig(func(c *Config) {
			c.Observer = func(e Event) {
				if e.Kind == StanzaOut && e.Resent {
					resent <- e.Stanza.ID
				}
			}
		}))
	p := dialRevPeer(t, b, "x.test", "y.test")

	b.send("<message from='b.test' to='u@x.test' id='x0'/>")
	if got := p.stanzas(1); got[0] != "x0" {
		t.Fatalf("read %v", got)
	}
	p.write(string(sm.AppendAnswer(nil, 1)))
	for _, s := range []string{"y0", "x1", "y1", "x2"} {
		b.send(fmt.Sprintf("<message from='b.test' to='u@%s.test' id='%s'/>", s[:1], s))
	}
	got := p.stanzas(4)
	slices.Sort(got)
	if !slices.Equal(got, []string{"x1", "x2", "y0", "y1"}) {
		t.Fatalf("read %v", got)
	}
	// Both links ride on the one stream, with XEP-0198, each holding its
	// own stanzas unacknowledged.
	links := waitLinks(t, b, "two links on the stream, x0 acknowledged", func(ls []LinkInfo) bool {
		x, okx := linkOf(ls, Outgoing, "b.test", "x.test")
		y, oky := linkOf(ls, Outgoing, "b.test", "y.test")
		return okx && oky && x.Unacked == 2 && y.Unacked == 2
	})
	x, _ := linkOf(links, Outgoing, "b.test", "x.test")
	y, _ := linkOf(links, Outgoing, "b.test", "y.test")
	if !x.StreamManagement || !y.StreamManagement || x.Stream != y.Stream || x.Stream == 0 {
		t.Fatalf("links on the shared stream: %+v %+v", x, y)
	}

	p.conn.Close() // the connection breaks, nothing more acknowledged

	byPair := map[string][]string{}
	for range 4 {
		s := xy.nextDelivered()
		byPair[domainpart(s.To)] = append(byPair[domainpart(s.To)], s.ID)
	}
	if !slices.Equal(byPair["x.test"], []string{"x1", "x2"}) || !slices.Equal(byPair["y.test"], []string{"y0", "y1"}) {
		t.Errorf("resent and delivered in order per pair: %v", byPair)
	}
	var marked []string
	for range 4 {
		marked = append(marked, <-resent)
	}
	slices.Sort(marked)
	if !slices.Equal(marked, []string{"x1", "x2", "y0", "y1"}) {
		t.Errorf("marked resent: %v", marked)
	}
	links = waitLinks(t, b, "resends counted", func(ls []LinkInfo) bool {
		x, okx := linkOf(ls, Outgoing, "b.test", "x.test")
		y, oky := linkOf(ls, Outgoing, "b.test", "y.test")
		return okx && oky && x.StanzasResent == 2 && y.StanzasResent == 2
	})
	x, _ = linkOf(links, Outgoing, "b.test", "x.test")
	if x.Stream == 0 || x.Stream == y.Stream {
		t.Errorf("after the break: %+v", links)
	}
	select {
	case s := <-xy.delivered:
		t.Errorf("delivered %s too (acknowledged before the break)", s.ID)
	case bo := <-b.bounced:
		t.Errorf("bounced %s: %s", bo.Stanza.ID, bo.Text)
	default:
	}
}

// TestBidiReversePeerDoesNotCount: a peer that enabled XEP-0198 on its
// bidi stream but does not count what we send back on it (it answers our
// <r/> with h='0', as this library did before it counted) gets no
// acknowledgements asked of it any more: the link stays up, keeps
// writing, and its stanzas count as written.
func TestBidiReversePeerDoesNotCount(t *testing.T) {
	la, lb := listen(t), listen(t)
	newNode(t, la, []string{"x.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la)})
	p := dialRevPeer(t, b, "x.test")
	b.send("<message from='b.test' to='u@x.test' id='x0'/>")
	// The batch that empties the queue ends with a <r/>: answer it as a
	// peer that counts nothing.
	for answered := false; !answered; {
		p.conn.SetReadDeadline(time.Now().Add(wait))
		e, err := p.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name.Space == sm.NS && e.Name.Local == "r" {
			p.write(string(sm.AppendAnswer(nil, 0)))
			answered = true
		}
	}
	waitLinks(t, b, "reverse acknowledgements off", func(ls []LinkInfo) bool {
		l, ok := linkOf(ls, Outgoing, "b.test", "x.test")
		return ok && !l.StreamManagement && l.Unacked == 0
	})
	for i := 1; i <= 3; i++ {
		b.send(fmt.Sprintf("<message from='b.test' to='u@x.test' id='x%d'/>", i))
	}
	for i := 1; i <= 3; {
		p.conn.SetReadDeadline(time.Now().Add(wait))
		e, err := p.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name.Space == sm.NS {
			t.Fatalf("%s after acknowledgements were turned off", e.Raw)
		}
		if e.ID != fmt.Sprintf("x%d", i) {
			t.Fatalf("read %s", e.Raw)
		}
		i++
	}
	// The link counts a stanza once its write returned, which may be
	// after the peer read it.
	waitLinks(t, b, "the link counting its 4 stanzas written", func(ls []LinkInfo) bool {
		l, ok := linkOf(ls, Outgoing, "b.test", "x.test")
		return ok && l.StanzasOut == 4
	})
}

// TestOutgoingAnswersReverse: our outgoing bidi stream counts the stanzas
// the peer sends back over it and answers the peer's <r/> with that count
// (XEP-0198 lets either side ask once it is enabled).
func TestOutgoingAnswersReverse(t *testing.T) {
	s := newRawServer(t)
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"r.test": addrOf(s.ln)})
	a.send("<message from='y@a.test' to='x@r.test' id='out'/>")
	s.acceptSM("r.test")
	if e, err := s.next(); err != nil || e.ID != "out" {
		t.Fatalf("our stanza: %v %s", err, e.Raw)
	}
	for i := range 3 {
		s.write(fmt.Sprintf("<message from='x@r.test' to='y@a.test' id='back%d'/>", i))
	}
	s.write(string(sm.Request))
	for range 3 {
		a.nextDelivered()
	}
	for {
		e, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name.Space != sm.NS || e.Name.Local != "a" {
			continue // our own <r/>s
		}
		el, err := sm.Parse(e.Raw)
		if err != nil || el.H != 3 {
			t.Fatalf("answer %s (%v), want h='3'", e.Raw, err)
		}
		break
	}
	if rev, ok := linkOf(a.m.Links(), Incoming, "a.test", "r.test"); !ok || !rev.StreamManagement || rev.StanzasIn != 3 {
		t.Errorf("the reverse pair: %+v", rev)
	}
	s.ackOurs(a, 1)
}

// ackOurs acknowledges the n stanzas our Manager wrote and waits until its
// link holds none, so that it shuts down without a stanza to resend.
func (s *rawServer) ackOurs(a *node, n uint32) {
	s.t.Helper()
	s.write(string(sm.AppendAnswer(nil, n)))
	waitLinks(s.t, a, "our stanzas acknowledged", func(ls []LinkInfo) bool {
		l := outgoing(ls)
		return len(l) == 1 && l[0].Unacked == 0
	})
}

// acceptSM is accept with bidi and <sm/> listed (as our incoming streams
// list them), answering our Manager's <enable/> with <enabled/>.
func (s *rawServer) acceptSM(domain string) {
	t := s.t
	t.Helper()
	s.acceptWith(domain, dialbackFeature, bidiFeature, sm.Feature)
	e, err := s.next()
	if err != nil || e.Name.Space != sm.NS || e.Name.Local != "enable" {
		t.Fatalf("waiting for <enable/>: %v %s", err, e.Raw)
	}
	s.write(string(sm.Enabled))
}

// TestBidiIdleCountsOurWrites: IdleTimeout ends a bidi stream on which
// nothing moved for that long in either direction, on both sides. b.test
// keeps writing back over a.test's bidi stream (without XEP-0198, so that
// no acknowledgement counts as traffic the other way), at intervals well
// under the IdleTimeout of both, for several times IdleTimeout: b.test's
// incoming stream and a.test's link stay up and carry everything; once
// b.test stops, the stream ends as idle.
func TestBidiIdleCountsOurWrites(t *testing.T) {
	const idle = 400 * time.Millisecond
	opts := []nodeOpt{withConfig(func(c *Config) { c.DisableStreamManagement, c.IdleTimeout = true, idle })}
	a, b := pairNodes(t, opts, opts)
	a.send("<message from='alice@a.test' to='bob@b.test' id='open'/>")
	b.nextDelivered()
	in, ok := linkOf(b.m.Links(), Incoming, "b.test", "a.test")
	if !ok {
		t.Fatal("no incoming link")
	}
	tick := time.NewTicker(idle / 8)
	defer tick.Stop()
	end := time.Now().Add(4 * idle)
	sent := 0
	for time.Now().Before(end) {
		<-tick.C
		b.send(fmt.Sprintf("<message from='bob@b.test' to='alice@a.test' id='ba%d'/>", sent))
		sent++
		if got := a.nextDelivered(); got.ID != fmt.Sprintf("ba%d", sent-1) {
			t.Fatalf("a got %s", got.ID)
		}
	}
	for _, l := range b.m.Links() {
		if l.Direction == Outgoing && l.Stream != in.Stream {
			t.Fatalf("b.test's link back left a.test's stream %d for %d", in.Stream, l.Stream)
		}
	}
	for _, n := range []*node{a, b} {
		noLinkDown(t, n, "while b.test wrote")
	}
	// Quiet now: the stream ends as idle, on whichever side's timer
	// fires first (the other sees a clean close).
	var aDown, bDown *Event
	deadline := time.After(wait)
	for aDown == nil || bDown == nil {
		select {
		case e := <-a.events:
			if e.Kind == LinkDown && e.Link.Direction == Outgoing {
				aDown = &e
			}
		case e := <-b.events:
			if e.Kind == LinkDown && e.Link.Direction == Incoming {
				bDown = &e
			}
		case <-deadline:
			t.Fatal("the quiet stream did not end")
		}
	}
	if !errors.Is(aDown.Err, ErrIdle) && !errors.Is(bDown.Err, ErrIdle) {
		t.Fatalf("the stream ended with %v (a.test) and %v (b.test), neither idle", aDown.Err, bDown.Err)
	}
}

// TestBidiIndex: the incoming bidi streams are indexed by the pairs of
// ours they may carry, and an ended stream leaves the index.
func TestBidiIndex(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	a.send("<message from='alice@a.test' to='bob@b.test' id='open'/>")
	b.nextDelivered()
	b.send("<message from='bob@b.test' to='alice@a.test' id='back'/>")
	a.nextDelivered()
	b.m.mu.Lock()
	ins := b.m.bidiIn[pair{"b.test", "a.test"}]
	n := len(b.m.bidiIn)
	b.m.mu.Unlock()
	if n != 1 || len(ins) != 1 {
		t.Fatalf("index %d pairs, %d streams for b.test → a.test", n, len(ins))
	}
	shutdown(t, a)
	awaitDown(t, b, Incoming)
	deadline := time.Now().Add(wait)
	for {
		b.m.mu.Lock()
		n := len(b.m.bidiIn)
		b.m.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended stream is still indexed (%d pairs)", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOutgoingEarlyReverse: on a bidi stream the peer may send back before
// it answers our <enable/> (another Manager does when a link of its finds
// the stream as soon as our pair is authenticated). Such a stanza is
// delivered, not taken for a broken negotiation, and not counted: the
// count starts at the peer's <enabled/>.
func TestOutgoingEarlyReverse(t *testing.T) {
	s := newRawServer(t)
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"r.test": addrOf(s.ln)})
	a.send("<message from='y@a.test' to='x@r.test' id='out'/>")
	s.acceptWith("r.test", dialbackFeature, bidiFeature, sm.Feature)
	s.write("<message from='x@r.test' to='y@a.test' id='early'/>")
	if e, err := s.next(); err != nil || e.Name.Local != "enable" {
		t.Fatalf("waiting for <enable/>: %v %s", err, e.Raw)
	}
	s.write(string(sm.Enabled))
	if got := a.nextDelivered(); got.ID != "early" {
		t.Fatalf("delivered %s", got.ID)
	}
	s.write("<message from='x@r.test' to='y@a.test' id='later'/>")
	s.write(string(sm.Request))
	if got := a.nextDelivered(); got.ID != "later" {
		t.Fatalf("delivered %s", got.ID)
	}
	for {
		e, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name.Space != sm.NS || e.Name.Local != "a" {
			continue
		}
		if el, err := sm.Parse(e.Raw); err != nil || el.H != 1 {
			t.Fatalf("answer %s (%v), want h='1': the stanza before <enabled/> is not counted", e.Raw, err)
		}
		s.ackOurs(a, 1)
		return
	}
}

// TestBidiReverseAuthPerPair: on one bidi stream authenticated by SASL
// EXTERNAL for its own pair and by dialback for a pair piggybacked on it,
// each reverse pair says how it was authenticated (LinkInfo.Auth), on
// both Managers: the stream's method for the stream's own pair, dialback
// for the piggybacked one.
func TestBidiReverseAuthPerPair(t *testing.T) {
	la, lb := listen(t), listen(t)
	opts := []nodeOpt{withMode("required_trusted"), withConfig(func(c *Config) { c.DisableSASLExternal = false })}
	a := newNode(t, la, []string{"a.test", "a2.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)}, opts...)
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la), "a2.test": addrOf(la)}, opts...)
	for _, from := range []string{"a.test", "a2.test"} {
		a.send(fmt.Sprintf("<message from='u@%s' to='v@b.test' id='%s'/>", from, from))
		if got := b.nextDelivered(); got.ID != from {
			t.Fatalf("b got %s", got.ID)
		}
	}
	for _, to := range []string{"a.test", "a2.test"} {
		b.send(fmt.Sprintf("<message from='v@b.test' to='u@%s' id='back-%s'/>", to, to))
		if got := a.nextDelivered(); got.ID != "back-"+to {
			t.Fatalf("a got %s", got.ID)
		}
	}
	want := map[string]Auth{"a.test": AuthSASLExternal, "a2.test": AuthDialback}
	aLinks := a.m.Links()
	stream := aLinks[0].Stream
	for _, l := range aLinks {
		if l.Stream != stream || l.Auth != want[l.Local] {
			t.Errorf("a.test's %s link %s ↔ %s: stream %d (want %d), auth %s (want %s)", l.Direction, l.Local, l.Remote, l.Stream, stream, l.Auth, want[l.Local])
		}
	}
	for _, l := range b.m.Links() {
		if l.Auth != want[l.Remote] {
			t.Errorf("b.test's %s link %s ↔ %s: auth %s, want %s", l.Direction, l.Local, l.Remote, l.Auth, want[l.Remote])
		}
	}
	if len(aLinks) != 4 {
		t.Errorf("a.test's links: %+v", aLinks)
	}
}

// TestOutgoingEarlyReverseNotKept: what a peer sends back before
// answering our <enable/> is read by the stream's reader as it comes, as
// after <enabled/>: delivered one by one, never kept, so more of it than
// any buffer holds is delivered, and not counted; a stanza over
// max_stanza_size ends the stream with policy-violation, as it would
// after <enabled/>, the stanzas before it delivered. (Before <enable/>
// was pipelined, negotiation kept them until the stream was up, bounded
// at 1 MiB in all.)
func TestOutgoingEarlyReverseNotKept(t *testing.T) {
	const big = 2000
	stanza := func(id string, n int) string {
		return "<message from='x@r.test' to='y@a.test' id='" + id + "'><body>" + strings.Repeat("x", n) + "</body></message>"
	}
	t.Run("more than a MiB", func(t *testing.T) {
		a, s := rawServerNode(t, withS2S(func(c *config.S2S) { c.MaxStanzaSize = 1 << 20 }))
		a.send("<message from='y@a.test' to='x@r.test' id='out'/>")
		s.acceptWith("r.test", dialbackFeature, bidiFeature, sm.Feature)
		const n = 20 // of 60 KiB each: 1.2 MiB
		conn := s.conn
		go func() {
			for i := range n {
				if _, err := io.WriteString(conn, stanza("s"+strconv.Itoa(i), 60<<10)); err != nil {
					return
				}
			}
		}()
		for i := range n {
			if got := a.nextDelivered(); got.ID != "s"+strconv.Itoa(i) {
				t.Fatalf("delivered %s, want s%d", got.ID, i)
			}
		}
		s.write(string(sm.Enabled))
		s.write(string(sm.Request))
		for {
			e, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if e.Name.Space != sm.NS || e.Name.Local != "a" {
				continue // <enable/>, our stanza, our <r/>
			}
			if el, err := sm.Parse(e.Raw); err != nil || el.H != 0 {
				t.Fatalf("answer %s (%v), want h='0': nothing came after <enabled/>", e.Raw, err)
			}
			break
		}
		s.ackOurs(a, 1)
	})
	t.Run("one over max_stanza_size", func(t *testing.T) {
		a, s := rawServerNode(t, withS2S(func(c *config.S2S) { c.MaxStanzaSize = big }))
		a.send("<message from='y@a.test' to='x@r.test' id='out'/>")
		s.acceptWith("r.test", dialbackFeature, bidiFeature, sm.Feature)
		s.write(stanza("small", 10) + stanza("big", big))
		if got := a.nextDelivered(); got.ID != "small" {
			t.Fatalf("delivered %s", got.ID)
		}
		for {
			e, err := s.next()
			if err == nil {
				if e.Name.Local == "enable" || e.Name.Local == "message" {
					continue
				}
				t.Fatalf("read %s, want the stream error", e.Raw)
			}
			var pe *wire.PeerError
			if !errors.As(err, &pe) || pe.Err.Err != "policy-violation" {
				t.Fatalf("the stream ended with %v, want stream error policy-violation", err)
			}
			break
		}
		e := waitEvent(t, a, LinkDown)
		if e.Err == nil || !strings.Contains(e.Err.Error(), "policy-violation") {
			t.Errorf("LinkDown error %v, want one saying policy-violation", e.Err)
		}
		// Our stanza, written after <enable/> and never acknowledged, goes
		// to the next link, once.
		s.acceptWith("r.test", dialbackFeature, bidiFeature, sm.Feature)
		for {
			e, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if e.Name.Local == "message" {
				if e.ID != "out" {
					t.Fatalf("read %s", e.Raw)
				}
				break
			}
		}
		s.write(string(sm.Enabled))
		s.ackOurs(a, 1)
		select {
		case got := <-a.delivered:
			t.Fatalf("delivered %s", got.Raw)
		default:
		}
	})
}

// TestBidiReverseHandBackDenied: b.test's link back to x.test rides on
// x's incoming bidi stream with x1 unacknowledged when Reload denies
// x.test. The link fails and retires; the stream, closed for the policy,
// then gives x1 back: it is bounced with policy-violation, never sent to
// x.test on a link made again for the denied pair.
func TestBidiReverseHandBackDenied(t *testing.T) {
	la, lb := listen(t), listen(t)
	xy := newNode(t, la, []string{"x.test", "y.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la), "y.test": addrOf(la)})
	p := dialRevPeer(t, b, "x.test", "y.test")
	b.send("<message from='b.test' to='u@x.test' id='x0'/>")
	p.stanzas(1)
	p.write(string(sm.AppendAnswer(nil, 1)))
	// x0 acknowledged before the Reload: read by b.test's reader, which
	// may come after x1 below is written and read.
	waitLinks(t, b, "x0 acknowledged", func(ls []LinkInfo) bool {
		x, ok := linkOf(ls, Outgoing, "b.test", "x.test")
		return ok && x.Unacked == 0
	})
	b.send("<message from='b.test' to='u@x.test' id='x1'/>")
	p.stanzas(1) // read, never acknowledged
	b.reload(func(s *config.S2S) { s.HostPolicy = []config.HostPolicy{{Host: "x.test", Policy: "deny"}} })
	select {
	case s := <-xy.delivered:
		t.Fatalf("%s delivered to x.test after Reload denied it", s.ID)
	case bo := <-b.bounced:
		if bo.Stanza.ID != "x1" || bo.Condition != stanza.PolicyViolation || !errors.Is(bo.Err, ErrDenied) {
			t.Errorf("bounced %s with %s %q (%v)", bo.Stanza.ID, bo.Condition, bo.Text, bo.Err)
		}
	case <-time.After(wait):
		t.Fatal("x1 neither bounced nor delivered")
	}
}

// TestReverseBatchAsksForItself: with two links writing back over one
// incoming bidi stream, the <r/> one link asked for its batch that emptied
// its queue (askNext) may go out with the other link's write, before that
// batch; the batch then asks for its own, so that it is acknowledged within
// a round trip rather than at the request timer. With one link left, the
// request policy applies again.
func TestReverseBatchAsksForItself(t *testing.T) {
	m := &Manager{clock: realClock{}, cfg: Config{QueueLength: 100}}
	s := &inStream{}
	s.m = m
	s.rsm.Store(&smRev{smOut: newSMOut(m)})
	var out strings.Builder
	w := wire.NewWriter(&out, 0)
	va := &inView{s: s, pair: pair{"a.test", "b.test"}, w: w}
	vb := &inView{s: s, pair: pair{"a2.test", "b.test"}, w: w}
	va.attach(nil)
	vb.attach(nil)
	vb.attach(nil) // counted once
	msg := func(id string) []Stanza {
		st, err := ParseStanza([]byte("<message from='u@b.test' to='v@a.test' id='" + id + "'/>"))
		if err != nil {
			t.Fatal(err)
		}
		return []Stanza{st}
	}
	write := func(v *inView, id string) (asked bool) {
		t.Helper()
		out.Reset()
		if _, err := s.revWrite(v, nil, msg(id)); err != nil {
			t.Fatal(err)
		}
		return strings.HasSuffix(out.String(), string(sm.Request))
	}
	s.rsm.Load().askNext() // va's batch emptied its queue...
	if !write(vb, "b1") {  // ...and vb's write took the request
		t.Fatal("the asked-for <r/> did not go out")
	}
	if !write(va, "a1") {
		t.Error("two links: the batch after another link's took its request went without its own <r/>")
	}
	vb.close(false, nil)
	vb.close(false, nil) // uncounted once
	if got := s.writers.Load(); got != 1 {
		t.Fatalf("writers after one of two views closed: %d, want 1", got)
	}
	if write(va, "a2") {
		t.Error("one link: a batch asked for an <r/> the policy did not make due")
	}
}

// TestReleaseRuns: release takes one from each stanza's view's count,
// whatever the order of views in the slice and with stanzas of no view
// among them.
func TestReleaseRuns(t *testing.T) {
	var a, b atomic.Int64
	a.Store(10)
	b.Store(10)
	q := []Stanza{{held: &a}, {held: &a}, {}, {held: &b}, {held: &a}, {held: &b}, {held: &b}, {}}
	release(q)
	if a.Load() != 7 || b.Load() != 7 {
		t.Fatalf("after release: view a %d, view b %d; want 7 each", a.Load(), b.Load())
	}
	release(nil)
	release(q[2:3])
	if a.Load() != 7 || b.Load() != 7 {
		t.Fatalf("release of no view's stanzas moved the counts: %d, %d", a.Load(), b.Load())
	}
}
