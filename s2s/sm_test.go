package s2s

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/sm"
)

// nextSM reads elements until an XEP-0198 one and returns it parsed.
func (p *rawPeer) nextSM() sm.Element {
	p.t.Helper()
	for {
		e, err := p.r.Next()
		if err != nil {
			p.t.Fatalf("waiting for a stream management element: %v", err)
		}
		if e.Name.Space != sm.NS {
			continue
		}
		el, err := sm.Parse(e.Raw)
		if err != nil {
			p.t.Fatal(err)
		}
		return el
	}
}

// TestIncomingStreamManagement: a peer enables XEP-0198 on its stream to
// us once authenticated (not before), and each <r/> gets the count of the
// stanzas the host was given; our close ends with a last <a/>.
func TestIncomingStreamManagement(t *testing.T) {
	b := authorityFor(t, []string{"x.test"})
	p := dialRaw(t, b, "x.test", "b.test")
	p.write(string(sm.Enable))
	if el := p.nextSM(); el.Kind != sm.KindFailed || el.Condition != "unexpected-request" {
		t.Fatalf("<enable/> before authentication answered with %+v", el)
	}
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	p.write(string(sm.Enable))
	if el := p.nextSM(); el.Kind != sm.KindEnabled || el.Resume {
		t.Fatalf("<enable/> answered with %+v", el)
	}
	p.write(string(sm.Enable))
	if el := p.nextSM(); el.Kind != sm.KindFailed || el.Condition != "unexpected-request" {
		t.Fatalf("a second <enable/> answered with %+v", el)
	}
	for i := range 3 {
		p.write(fmt.Sprintf(`<message from='a@x.test' to='b@b.test' id='%d'/>`, i))
	}
	p.write(string(sm.Request))
	if el := p.nextSM(); el.Kind != sm.KindAnswer || el.H != 3 {
		t.Fatalf("<r/> after 3 stanzas answered with %+v", el)
	}
	for i := range 3 {
		if got := b.nextDelivered(); got.ID != strconv.Itoa(i) {
			t.Fatalf("delivered %+v", got)
		}
	}
	// An <a/> from the peer (the answer to a probe, or its last one) is
	// taken quietly.
	p.write(string(sm.AppendAnswer(nil, 0)))
	p.write(`<message from='a@x.test' to='b@b.test' id='3'/>`)
	b.nextDelivered()
	p.write(string(sm.Request))
	if el := p.nextSM(); el.Kind != sm.KindAnswer || el.H != 4 {
		t.Fatalf("<r/> after 4 stanzas answered with %+v", el)
	}
	var in []LinkInfo
	for _, l := range b.m.Links() {
		if l.Direction == Incoming {
			in = append(in, l)
		}
	}
	if len(in) != 1 || !in[0].StreamManagement || in[0].StanzasIn != 4 {
		t.Fatalf("incoming links %+v", in)
	}
	// Shutdown closes the stream: the last <a/> comes before the close.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	go b.m.Shutdown(ctx)
	if el := p.nextSM(); el.Kind != sm.KindAnswer || el.H != 4 {
		t.Fatalf("the close came after %+v", el)
	}
	if cond := p.streamError(); cond != "" {
		t.Fatalf("stream error %q after the last <a/>", cond)
	}
}

// TestIncomingStreamManagementErrors: what a peer must not send.
func TestIncomingStreamManagementErrors(t *testing.T) {
	for i, tc := range []struct {
		auth     bool
		send     string
		wantCond string
	}{
		{auth: true, send: string(sm.Request), wantCond: "unsupported-stanza-type"},
		{auth: true, send: string(sm.Enabled), wantCond: "unsupported-stanza-type"},
		{auth: true, send: `<a xmlns='urn:xmpp:sm:3' h='x'/>`, wantCond: "bad-format"},
		{auth: true, send: `<resume xmlns='urn:xmpp:sm:3' previd='x' h='1'/>`, wantCond: "bad-format"},
		{auth: false, send: string(sm.Request), wantCond: "unsupported-stanza-type"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			b := authorityFor(t, []string{"x.test"})
			p := dialRaw(t, b, "x.test", "b.test")
			if tc.auth {
				if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
					t.Fatalf("dialback %q", typ)
				}
			}
			p.write(tc.send)
			if cond := p.streamError(); cond != tc.wantCond {
				t.Fatalf("%s: stream error %q, want %q", tc.send, cond, tc.wantCond)
			}
		})
	}
}

// TestStreamManagementDisabled: with DisableStreamManagement, <sm/> is not
// listed and <enable/> is refused.
func TestStreamManagementDisabled(t *testing.T) {
	b := authorityFor(t, []string{"x.test"}, withConfig(func(c *Config) { c.DisableStreamManagement = true }))
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	p.write(string(sm.Enable))
	if el := p.nextSM(); el.Kind != sm.KindFailed || el.Condition != "service-unavailable" {
		t.Fatalf("<enable/> answered with %+v", el)
	}
}

// dialSMPeer opens a raw stream to b, authenticates x.test → b.test with
// dialback and enables XEP-0198 on it.
func dialSMPeer(t *testing.T, b *node) *rawPeer {
	t.Helper()
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	p.write(string(sm.Enable))
	if el := p.nextSM(); el.Kind != sm.KindEnabled {
		t.Fatalf("<enable/> answered with %+v", el)
	}
	return p
}

// TestIncomingKeepAlive: on a stream whose peer enabled XEP-0198, a silent
// peer is probed with <r/> after one interval; an answer, or any byte
// (whitespace included), keeps the stream; silence for another interval
// ends it with connection-timeout. Time is a fake clock.
func TestIncomingKeepAlive(t *testing.T) {
	for i, answer := range []string{"a", "space", "none"} {
		t.Run(strconv.Itoa(i)+"-"+answer, func(t *testing.T) {
			clk := newFakeClock()
			const k = 30 * time.Second
			b := authorityFor(t, []string{"x.test"}, withConfig(func(c *Config) {
				c.clock = clk
				c.KeepAlive = k
				c.IdleTimeout = -1
			}))
			p := dialSMPeer(t, b)
			s := onlyIncoming(t, b)
			for round := range 2 {
				clk.Advance(k)
				if el := p.nextSM(); el.Kind != sm.KindRequest {
					t.Fatalf("round %d: probe %+v", round, el)
				}
				clk.Advance(time.Millisecond)
				mark := clk.Now()
				switch answer {
				case "a":
					p.write(string(sm.AppendAnswer(nil, 0)))
				case "space":
					p.write(" \n")
				case "none":
					clk.Advance(k - time.Millisecond)
					if cond := p.streamError(); cond != "connection-timeout" {
						t.Fatalf("stream error %q", cond)
					}
					for {
						e := waitEvent(t, b, LinkDown)
						if e.Link.Direction != Incoming {
							continue
						}
						if !errors.Is(e.Err, ErrKeepAlive) {
							t.Fatalf("link down for %v", e.Err)
						}
						return
					}
				}
				// The answer was read: the stream's monitor heard it at
				// the clock's time (polled: a read gives no signal).
				deadline := time.Now().Add(wait)
				for s.ka.Last().Before(mark) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: the answer was not read", round)
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
}

// onlyIncoming returns n's one incoming stream.
func onlyIncoming(t *testing.T, n *node) *inStream {
	t.Helper()
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	if len(n.m.in) != 1 {
		t.Fatalf("%d incoming streams", len(n.m.in))
	}
	for s := range n.m.in {
		return s
	}
	return nil
}
