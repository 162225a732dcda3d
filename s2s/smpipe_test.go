package s2s

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// Pipelined <enable/> (smout.go): our outgoing stream's first write is
// <enable/> and the link's first stanzas, and the peer's answer is taken
// by the stream's reader. These tests play the peer by hand (rawServer),
// so that they choose when it answers and with what.

// wireWrites records each Write of our Manager's connections, whole, for
// tests that look at how bytes were put together.
type wireWrites struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *wireWrites) tap(c net.Conn) net.Conn { return &wireWritesConn{Conn: c, w: w} }

type wireWritesConn struct {
	net.Conn
	w *wireWrites
}

func (c *wireWritesConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	c.w.writes = append(c.w.writes, append([]byte(nil), p...))
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

// containing returns the writes with sub in them.
func (w *wireWrites) containing(sub string) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out [][]byte
	for _, b := range w.writes {
		if bytes.Contains(b, []byte(sub)) {
			out = append(out, b)
		}
	}
	return out
}

func pipeMsg(id string) string {
	return "<message from='y@a.test' to='x@r.test' id='" + id + "'><body>" + id + "</body></message>"
}

// readStanzas reads our Manager's elements until n stanzas came, and
// returns their ids and the XEP-0198 elements read meanwhile.
func (s *rawServer) readStanzas(n int) (ids []string, smEls []string) {
	s.t.Helper()
	for len(ids) < n {
		e, err := s.next()
		if err != nil {
			s.t.Fatalf("after %v: %v", ids, err)
		}
		switch {
		case e.Name.Space == sm.NS:
			smEls = append(smEls, e.Name.Local)
		case isStanzaName(e.Name.Local):
			ids = append(ids, e.ID)
		}
	}
	return ids, smEls
}

// oneOutgoing waits until a.test has one outgoing link to r.test for
// which ok holds.
func oneOutgoing(t *testing.T, a *node, what string, ok func(LinkInfo) bool) LinkInfo {
	t.Helper()
	ls := waitLinks(t, a, what, func(ls []LinkInfo) bool {
		out := outgoing(ls)
		return len(out) == 1 && ok(out[0])
	})
	return outgoing(ls)[0]
}

// TestEnablePipelined: the stanzas queued when the stream comes up go out
// in the same write as <enable/>, right behind it, with no <r/> (the peer
// has not enabled anything yet); the link keeps and counts them
// meanwhile. <enabled/> then brings the <r/> that was held back, and the
// peer's <a/> for the pipelined stanzas empties the link. Time is a fake
// clock: no request timer fires.
func TestEnablePipelined(t *testing.T) {
	w := &wireWrites{}
	a, s := rawServerNode(t, withConfig(func(c *Config) {
		c.clock = newFakeClock()
		c.tap = w.tap
	}))
	a.send(pipeMsg("m1"))
	a.send(pipeMsg("m2"))
	s.acceptWith("r.test", dialbackFeature, sm.Feature)
	e, err := s.next()
	if err != nil || e.Name.Space != sm.NS || e.Name.Local != "enable" {
		t.Fatalf("first element after authentication: %s (%v), want <enable/>", e.Raw, err)
	}
	ids, smEls := s.readStanzas(1)
	if ids[0] != "m1" || len(smEls) != 0 {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	first := w.containing("<enable ")
	if len(first) != 1 || !bytes.HasPrefix(first[0], sm.Enable) || !bytes.Contains(first[0], []byte(pipeMsg("m1"))) || bytes.Contains(first[0], sm.Request) {
		t.Fatalf("writes with <enable/>: %q; want one, <enable/> and then the first stanza, no <r/>", first)
	}
	// m2 was queued when the stream came up too, or came right after:
	// either way it was written before any answer, without <r/>.
	if ids, smEls = s.readStanzas(1); ids[0] != "m2" || len(smEls) != 0 {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	// (A write is counted in StanzasOut once it returned, which may be
	// after the peer read it.)
	l := oneOutgoing(t, a, "both stanzas kept", func(l LinkInfo) bool { return l.Unacked == 2 && l.StanzasOut == 2 })
	if !l.StreamManagement {
		t.Fatalf("before <enabled/>: %+v", l)
	}
	if len(w.containing(string(sm.Request))) != 0 {
		t.Fatal("a <r/> was written before <enabled/>")
	}
	s.write(string(sm.Enabled))
	e, err = s.next()
	if err != nil || e.Name.Space != sm.NS || e.Name.Local != "r" {
		t.Fatalf("after <enabled/>: %s (%v), want the <r/> held back", e.Raw, err)
	}
	s.ackOurs(a, 2)
	select {
	case b := <-a.bounced:
		t.Fatalf("bounced %s", b.Stanza.ID)
	default:
	}
}

// TestEnableFailedAfterPipelined: the peer refuses <enable/> with
// <failed/> after the stanzas that followed it were written. Stream
// management is off for the link: what it kept counts as written (the
// peer read it; it only does not count it), so nothing is bounced, kept
// or written again, no <r/> or <a/> goes out, and the link carries more
// stanzas and closes as any link without XEP-0198.
func TestEnableFailedAfterPipelined(t *testing.T) {
	a, s := rawServerNode(t, withConfig(func(c *Config) { c.clock = newFakeClock() }))
	for i := range 3 {
		a.send(pipeMsg("p" + strconv.Itoa(i)))
	}
	s.acceptWith("r.test", dialbackFeature, sm.Feature)
	ids, smEls := s.readStanzas(3)
	if strings.Join(ids, " ") != "p0 p1 p2" || strings.Join(smEls, " ") != "enable" {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	oneOutgoing(t, a, "the stanzas kept", func(l LinkInfo) bool { return l.Unacked == 3 })
	s.write("<failed xmlns='urn:xmpp:sm:3'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")
	l := oneOutgoing(t, a, "stream management off", func(l LinkInfo) bool { return !l.StreamManagement && l.StanzasOut == 3 })
	if l.Unacked != 0 || l.StanzasResent != 0 {
		t.Fatalf("after <failed/>: %+v", l)
	}
	a.send(pipeMsg("p3"))
	if ids, smEls = s.readStanzas(1); ids[0] != "p3" || len(smEls) != 0 {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	shutdown(t, a)
	for {
		e, err := s.next()
		var pe *wire.PeerError
		if errors.As(err, &pe) {
			t.Fatalf("stream error %v", err)
		}
		if err != nil {
			break // our </stream:stream>
		}
		t.Fatalf("after p3: %s, want our close and nothing else", e.Raw)
	}
	select {
	case b := <-a.bounced:
		t.Fatalf("bounced %s: %s", b.Stanza.ID, b.Text)
	default:
	}
}

// TestEnabledAfterPeerHandled: the peer handles the pipelined stanzas
// before its <enabled/> reaches us, and says so at once (<enabled/> and
// an unrequested <a h='2'/> in one write), then sends back a stanza of
// its own. Both counts started at <enable/>, so the <a/> acknowledges
// exactly what we wrote (no count too high, nothing kept), and the
// stanza back, sent after its <enabled/>, is counted on our side.
func TestEnabledAfterPeerHandled(t *testing.T) {
	a, s := rawServerNode(t, withConfig(func(c *Config) { c.clock = newFakeClock() }))
	a.send(pipeMsg("h1"))
	a.send(pipeMsg("h2"))
	s.acceptWith("r.test", dialbackFeature, bidiFeature, sm.Feature)
	if ids, smEls := s.readStanzas(2); strings.Join(ids, " ") != "h1 h2" || strings.Join(smEls, " ") != "enable" {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	s.write(string(sm.Enabled) + string(sm.AppendAnswer(nil, 2)) + "<message from='x@r.test' to='y@a.test' id='back'/>" + string(sm.Request))
	if got := a.nextDelivered(); got.ID != "back" {
		t.Fatalf("delivered %s", got.ID)
	}
	for {
		e, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name.Space != sm.NS || e.Name.Local != "a" {
			continue // our <r/>, held back until <enabled/>
		}
		if el, err := sm.Parse(e.Raw); err != nil || el.H != 1 {
			t.Fatalf("our answer %s (%v), want h='1'", e.Raw, err)
		}
		break
	}
	l := oneOutgoing(t, a, "the pipelined stanzas acknowledged", func(l LinkInfo) bool { return l.Unacked == 0 && l.StanzasOut == 2 })
	if !l.StreamManagement {
		t.Fatalf("link %+v", l)
	}
	for _, e := range drainEvents(a) {
		if e.Kind == LinkDown {
			t.Fatalf("link down: %v", e.Err)
		}
	}
}

// TestLinkDiesBeforeEnabled: the stream dies between our <enable/> and
// the peer's answer. What the link wrote after <enable/> is handled as
// with XEP-0198 (README, "Embedding"): written once more, in order, on a
// new link, marked resent; dead again before any acknowledgement, it is
// bounced ("lost twice"), never written a third time.
func TestLinkDiesBeforeEnabled(t *testing.T) {
	for _, twice := range []bool{false, true} {
		t.Run("twice="+strconv.FormatBool(twice), func(t *testing.T) {
			a, s := rawServerNode(t, withConfig(func(c *Config) { c.clock = newFakeClock() }))
			a.send(pipeMsg("d1"))
			a.send(pipeMsg("d2"))
			s.acceptWith("r.test", dialbackFeature, sm.Feature)
			if ids, _ := s.readStanzas(2); strings.Join(ids, " ") != "d1 d2" {
				t.Fatalf("first link: read %v", ids)
			}
			s.conn.Close() // no answer to <enable/>: the connection is gone
			s.acceptWith("r.test", dialbackFeature, sm.Feature)
			ids, smEls := s.readStanzas(2)
			if strings.Join(ids, " ") != "d1 d2" || strings.Join(smEls, " ") != "enable" {
				t.Fatalf("second link: read %v and %v, want <enable/>, then d1 d2 again", ids, smEls)
			}
			if !twice {
				s.write(string(sm.Enabled))
				s.ackOurs(a, 2)
				if l := oneOutgoing(t, a, "resends counted", func(LinkInfo) bool { return true }); l.StanzasResent != 2 {
					t.Errorf("StanzasResent %d, want 2", l.StanzasResent)
				}
				select {
				case b := <-a.bounced:
					t.Fatalf("bounced %s", b.Stanza.ID)
				default:
				}
				return
			}
			s.conn.Close()
			for _, id := range []string{"d1", "d2"} {
				b := a.nextBounce()
				if b.Stanza.ID != id || b.Condition != stanza.RemoteServerTimeout || !strings.Contains(b.Text, "twice") {
					t.Errorf("bounce %s %s %q, want %s remote-server-timeout, lost twice", b.Stanza.ID, b.Condition, b.Text, id)
				}
			}
		})
	}
}

// drainEvents returns the events n has recorded so far.
func drainEvents(n *node) []Event {
	var out []Event
	for {
		select {
		case e := <-n.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestEnableUnanswered: a peer that lists <sm/> but never answers our
// <enable/> is held to what an unanswered <r/> is: silent for KeepAlive
// after it, the link is dead, and what it wrote behind <enable/> goes to
// a new link. Time is a fake clock.
func TestEnableUnanswered(t *testing.T) {
	clk := newFakeClock()
	const k = 30 * time.Second
	a, s := rawServerNode(t, withConfig(func(c *Config) {
		c.clock = clk
		c.KeepAlive = k
		c.IdleTimeout = -1
	}))
	a.send(pipeMsg("u1"))
	s.acceptWith("r.test", dialbackFeature, sm.Feature)
	if ids, smEls := s.readStanzas(1); ids[0] != "u1" || strings.Join(smEls, " ") != "enable" {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	clk.Advance(k)
	e := waitEvent(t, a, LinkDown)
	if !errors.Is(e.Err, ErrKeepAlive) {
		t.Fatalf("link down for %v, want the keepalive", e.Err)
	}
	s.acceptWith("r.test", dialbackFeature, sm.Feature)
	if ids, smEls := s.readStanzas(1); ids[0] != "u1" || strings.Join(smEls, " ") != "enable" {
		t.Fatalf("the new link: read %v and %v, want <enable/> and u1 again", ids, smEls)
	}
	s.write(string(sm.Enabled))
	s.ackOurs(a, 1)
}

// smStart brings up a.test's link to the raw server with XEP-0198, sending
// m0 first: <enable/> and m0, then <enabled/>, which brings the <r/> held
// back for m0; that <r/> is left unanswered.
func smStart(t *testing.T, a *node, s *rawServer) {
	t.Helper()
	a.send(pipeMsg("m0"))
	s.acceptWith("r.test", dialbackFeature, sm.Feature)
	if e, err := s.next(); err != nil || e.Name.Space != sm.NS || e.Name.Local != "enable" {
		t.Fatalf("first element after authentication: %s (%v), want <enable/>", e.Raw, err)
	}
	if ids, smEls := s.readStanzas(1); ids[0] != "m0" || len(smEls) != 0 {
		t.Fatalf("read %v and %v", ids, smEls)
	}
	s.write(string(sm.Enabled))
	if e, err := s.next(); err != nil || e.Name.Space != sm.NS || e.Name.Local != "r" {
		t.Fatalf("after <enabled/>: %s (%v), want the <r/> held back", e.Raw, err)
	}
}

// sendRound sends n stanzas with ids prefix-0 … and reads them at the
// raw server, returning the XEP-0198 elements read among them.
func sendRound(t *testing.T, a *node, s *rawServer, prefix string, n int) []string {
	t.Helper()
	for i := range n {
		a.send(pipeMsg(prefix + "-" + strconv.Itoa(i)))
	}
	ids, smEls := s.readStanzas(n)
	for i, id := range ids {
		if want := prefix + "-" + strconv.Itoa(i); id != want {
			t.Fatalf("read %s, want %s", id, want)
		}
	}
	return smEls
}

// TestRequestOncePerRoundTrip: a busy link asks for acknowledgements at
// most once per round trip. While its <r/> is unanswered, batches past
// RequestEvery (64) stanzas, and batches that empty the queue, ask for
// nothing more (each <r/> costs the peer a write of its <a/>); the answer
// lets the next batch ask again, for what was written meanwhile. The
// owner never parks here (linger), and the clock is fake (no request
// timer, no RequestDelay).
func TestRequestOncePerRoundTrip(t *testing.T) {
	a, s := rawServerNode(t, withConfig(func(c *Config) {
		c.clock = newFakeClock()
		c.linger = time.Hour
	}))
	smStart(t, a, s)
	for round := range 3 {
		if smEls := sendRound(t, a, s, "r"+strconv.Itoa(round), 70); len(smEls) != 0 {
			t.Fatalf("round %d, with the <r/> unanswered: read %v", round, smEls)
		}
	}
	// The answer (m0) lets the next batch ask, once, for the 210 since.
	s.write(string(sm.AppendAnswer(nil, 1)))
	oneOutgoing(t, a, "m0 acknowledged", func(l LinkInfo) bool { return l.Unacked == 210 })
	smEls := sendRound(t, a, s, "r3", 70)
	if len(smEls) == 0 {
		// The batch that asked held all 70: its <r/> follows them.
		if e, err := s.next(); err != nil || e.Name.Space != sm.NS || e.Name.Local != "r" {
			t.Fatalf("after the answer and 70 stanzas more: %s (%v), want a <r/>", e.Raw, err)
		}
	} else if len(smEls) != 1 || smEls[0] != "r" {
		t.Fatalf("after the answer: read %v among 70 stanzas, want one <r/>", smEls)
	}
	s.ackOurs(a, 281)
	select {
	case b := <-a.bounced:
		t.Fatalf("bounced %s", b.Stanza.ID)
	default:
	}
}

// TestQuietLinkAsks: a link that goes quiet asks for the acknowledgement
// of what it wrote as its owner parks, within a round trip, not at the
// request timer (the clock is fake: no timer fires).
func TestQuietLinkAsks(t *testing.T) {
	a, s := rawServerNode(t, withConfig(func(c *Config) { c.clock = newFakeClock() }))
	smStart(t, a, s)
	s.ackOurs(a, 1)
	smEls := sendRound(t, a, s, "q", 1)
	if len(smEls) == 0 {
		if e, err := s.next(); err != nil || e.Name.Space != sm.NS || e.Name.Local != "r" {
			t.Fatalf("after one stanza on a quiet link: %s (%v), want a <r/>", e.Raw, err)
		}
	}
	s.ackOurs(a, 2)
}
