package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// TestPeerMaxBytes: b.test announces a max-bytes (XEP-0478) of 2000; a
// larger stanza from a.test is bounced alone with policy-violation and a
// reason naming both sizes, while the stanzas around it are delivered on
// the same link, which stays up.
func TestPeerMaxBytes(t *testing.T) {
	a, b := pairNodes(t, nil, []nodeOpt{withS2S(func(s *config.S2S) { s.MaxStanzaSize = 2000 })})
	big := fmt.Sprintf(`<message from='a.test' to='b@b.test' id='big'><body>%s</body></message>`, strings.Repeat("x", 3000))
	a.send(`<message from='a.test' to='b@b.test' id='1'/>`)
	a.send(big)
	a.send(`<message from='a.test' to='b@b.test' id='2'/>`)
	for _, id := range []string{"1", "2"} {
		if got := b.nextDelivered(); got.ID != id {
			t.Fatalf("delivered %q, want %q", got.ID, id)
		}
	}
	bo := a.nextBounce()
	if bo.Stanza.ID != "big" || bo.Condition != stanza.PolicyViolation ||
		!strings.Contains(bo.Text, fmt.Sprintf("%d bytes", len(big))) || !strings.Contains(bo.Text, "at most 2000") {
		t.Fatalf("bounce %s %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
	}
	if l := outgoing(a.m.Links()); len(l) != 1 {
		t.Fatalf("links after the bounce: %+v", l)
	}
	select {
	case e := <-a.events:
		if e.Kind == LinkDown {
			t.Fatalf("link down: %v", e.Err)
		}
	default:
	}
}

// TestKeepAliveAnswered: a link the peer is silent on is probed once per
// interval, and the answer keeps it up: an XEP-0198 <r/> answered with
// <a/>, or, without stream management, a ping answered on the peer's own
// stream to us, which the host never sees. Time is a fake clock: each
// interval is one step.
func TestKeepAliveAnswered(t *testing.T) {
	for _, smOn := range []bool{true, false} {
		t.Run(fmt.Sprint("sm=", smOn), func(t *testing.T) {
			clk := newFakeClock()
			probed := make(chan struct{}, 8)
			answered := make(chan struct{}, 64)
			opts := func(c *Config) { c.DisableStreamManagement = !smOn }
			a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) {
				opts(c)
				c.clock = clk
				c.KeepAlive = 30 * time.Second
				c.IdleTimeout = -1
				c.probed = func(pair) { probed <- struct{}{} }
				c.answered = func(pair) { answered <- struct{}{} }
			})}, []nodeOpt{withConfig(opts)})
			a.send(msgAB)
			b.nextDelivered()
			// Without SM, the answer comes on b's own link to a: bring
			// it up first, so that answering takes no dialback.
			b.send(msgBA)
			a.nextDelivered()
			if smOn {
				// The <r/> that followed a's message must be answered
				// before the clock moves: one still out when it moves a
				// whole interval is a dead link, rightly (it failed so
				// under load). So must the one b asks for what it sent
				// back, which goes out as b's owner parks, a moment after
				// the message: read by a after the clock moved, it would
				// be life heard at the new time, and the check of the
				// first interval would find a's link not silent.
				waitAcked(t, a)
				waitAcked(t, b)
			}
			for len(answered) > 0 {
				<-answered // the acknowledgements of the two messages
			}
			for i := range 3 {
				clk.Advance(30 * time.Second)
				select {
				case <-probed:
				case <-time.After(wait):
					t.Fatalf("interval %d: no probe", i)
				}
				if !smOn {
					// b's host answers the ping, as servers do (our
					// Manager leaves iqs to its host).
					ping := b.nextDelivered()
					b.send(fmt.Sprintf(`<iq type='result' id='%s' from='b.test' to='a.test'/>`, ping.ID))
				}
				select {
				case <-answered:
				case <-time.After(wait):
					t.Fatalf("interval %d: no answer", i)
				}
			}
			for _, l := range a.m.Links() {
				if l.Direction == Outgoing && l.StreamManagement != smOn {
					t.Fatalf("link %+v", l)
				}
			}
			select {
			case s := <-a.delivered:
				t.Fatalf("the host got %s", s.Raw)
			case e := <-a.events:
				if e.Kind == LinkDown && errors.Is(e.Err, ErrKeepAlive) {
					t.Fatalf("link declared dead: %v", e.Err)
				}
			default:
			}
		})
	}
}

// waitAcked waits until n's outgoing links hold nothing unacknowledged
// (polled: an acknowledgement gives no event).
func waitAcked(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		acked := true
		for _, l := range n.m.Links() {
			if l.Direction == Outgoing && l.Unacked > 0 {
				acked = false
			}
		}
		if acked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still unacknowledged: %+v", n.m.Links())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReverseRequestAfterOwnerLeft: on our bidi stream shared by two
// pairs, the owner's link has left (drained) while the other still writes
// to it; the peer's <r/> for what it sent back is answered by that other
// link, with the count, instead of going to the gone owner and staying
// unanswered (a peer that counts our answers would end the stream).
func TestReverseRequestAfterOwnerLeft(t *testing.T) {
	m := &Manager{clock: realClock{}}
	oc := &outConn{done: make(chan struct{}), bidi: true, p: pair{"a1.test", "b.test"}}
	oc.sm.Store(newSMOut(m))
	oc.refs.Store(1)
	oc.rh.Store(7)
	owner := &outLink{m: m, pair: oc.p} // left: its conn is no longer oc
	oc.owner = owner
	other := &outLink{m: m, pair: pair{"a2.test", "b.test"}}
	other.conn = &shareView{oc: oc, pair: other.pair, l: other}
	other.running = true // its owner goroutine is at work: the wake is a no-op
	oc.sharers = []*outLink{other}
	if !owner.fromPeer(oc, nil, &wire.Element{Name: xml.Name{Space: sm.NS, Local: "r"}, Raw: sm.Request}) {
		t.Fatal("the <r/> was not taken")
	}
	other.mu.Lock()
	defer other.mu.Unlock()
	if want := sm.AppendAnswer(nil, 7); len(other.ctrl) != 1 || !bytes.Equal(other.ctrl[0], want) {
		t.Errorf("the remaining link writes %q, want %q", other.ctrl, want)
	}
}
