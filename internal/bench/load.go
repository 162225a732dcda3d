package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/xmpp-s2s/federation/s2s"
)

// messageFor returns the ~200-byte chat message every throughput run sends,
// from a user of the local domain from.
func messageFor(from string) []byte {
	return []byte("<message from='juliet@" + from + "/balcony' to='romeo@" + receiverDomain +
		"' type='chat' id='ktx72v49'><body>Art thou not Romeo, and a Montague? Wherefore art thou Romeo?</body></message>")
}

// pingFor returns a XEP-0199 ping from a local domain to the receiver, and
// the result the receiver answers it with.
func pingFor(from string) (ping, result []byte) {
	ping = []byte("<iq from='" + from + "' to='" + receiverDomain + "' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	result = []byte("<iq from='" + receiverDomain + "' to='" + from + "' type='result' id='p1'/>")
	return ping, result
}

// waitFor waits for done, the end of ctx, or a deadline that catches a lost
// stanza instead of hanging the harness.
func waitFor(ctx context.Context, done <-chan struct{}, what string, p *libPair) error {
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		why := ""
		if t := p.lastBounce.Load(); t != nil {
			why = ", last: " + *t
		}
		return fmt.Errorf("bench: %s did not complete (%d bounced%s)", what, p.bounce.Load(), why)
	}
}

// acquire takes a place in the window sem, waiting for one (or for the end
// of ctx) only when it is full. The place is tried first without a wait, as
// the raw runs do: a select with two cases for every stanza was about 1% of
// the instructions of a ping round trip, the harness's and not the
// Managers'.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// counter closes done once it has counted n.
type counter struct {
	n    int64
	got  atomic.Int64
	done chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), done: make(chan struct{})} }

// add counts one; links of the idle experiment deliver concurrently.
func (c *counter) add() {
	if c.got.Add(1) == c.n {
		close(c.done)
	}
}

// warm brings up the link of local domain i (and, for pings, the way back)
// with one stanza, so that throughput runs measure an established link.
func (p *libPair) warm(ctx context.Context, i int, ping bool) error {
	c := newCounter(1)
	from := senderDomain(i)
	if ping {
		raw, res := pingFor(from)
		reply, _ := s2s.ParseStanza(res)
		p.handle(false, func(s2s.Stanza) { p.b.SendStanza(ctx, reply) })
		p.handle(true, func(s2s.Stanza) { c.add() })
		if err := p.a.Send(ctx, raw); err != nil {
			return err
		}
	} else {
		p.handle(false, func(s2s.Stanza) { c.add() })
		if err := p.a.Send(ctx, messageFor(from)); err != nil {
			return err
		}
	}
	return waitFor(ctx, c.done, "warm-up", p)
}

// messages sends n messages on the link of local domain 0, keeping at most
// window undelivered (the queue is bounded: a sender that outruns the link
// gets bounces, not back-pressure), and returns the time from the first
// Send to the last delivery and the heap allocations per message, both
// Managers included.
func (p *libPair) messages(ctx context.Context, n, window int) (time.Duration, float64, error) {
	if err := p.warm(ctx, 0, false); err != nil {
		return 0, 0, err
	}
	msg := messageFor(senderDomain(0))
	sem := make(chan struct{}, window)
	c := newCounter(n)
	p.handle(false, func(s2s.Stanza) { <-sem; c.add() })
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		if err := acquire(ctx, sem); err != nil {
			return 0, 0, err
		}
		if err := p.a.Send(ctx, msg); err != nil {
			return 0, 0, err
		}
	}
	if err := waitFor(ctx, c.done, "message run", p); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	return d, float64(after.Mallocs-before.Mallocs) / float64(n), p.checkBounces()
}

// pings runs n XEP-0199 round trips on local domain 0's links with window
// pings outstanding, and returns the time they took.
func (p *libPair) pings(ctx context.Context, n, window int) (time.Duration, error) {
	if err := p.warm(ctx, 0, true); err != nil {
		return 0, err
	}
	raw, res := pingFor(senderDomain(0))
	reply, err := s2s.ParseStanza(res)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, window)
	c := newCounter(n)
	p.handle(false, func(s2s.Stanza) { p.b.SendStanza(ctx, reply) })
	p.handle(true, func(s2s.Stanza) { <-sem; c.add() })
	start := time.Now()
	for range n {
		if err := acquire(ctx, sem); err != nil {
			return 0, err
		}
		if err := p.a.Send(ctx, raw); err != nil {
			return 0, err
		}
	}
	if err := waitFor(ctx, c.done, "ping run", p); err != nil {
		return 0, err
	}
	return time.Since(start), p.checkBounces()
}

// firstStanza sends the first stanza of local domain i, which has no link
// yet, and returns the time to its delivery and the round trips on a's new
// link and on b's verification stream.
//
// The round trips of a's link are those a had made when b read the
// stanza (seenListener), those of b's verification stream those it had
// made when b's host was given it: a write on a's link after b read the
// stanza (the <r/> that follows b's <enabled/>, which a's pipelined
// <enable/> did not wait for) is no round trip the stanza waited for.
func (p *libPair) firstStanza(ctx context.Context, i int) (time.Duration, int64, int64, error) {
	c := newCounter(1)
	var turnsA, turnsB int64 // written before c.done closes
	p.handle(false, func(s2s.Stanza) {
		turnsA, turnsB = p.seenA.Load(), p.turnsB.Load()
		c.add()
	})
	p.turnsA.Store(0)
	p.turnsB.Store(0)
	p.seenA.Store(0)
	msg := messageFor(senderDomain(i))
	start := time.Now()
	if err := p.a.Send(ctx, msg); err != nil {
		return 0, 0, 0, err
	}
	if err := waitFor(ctx, c.done, "first stanza", p); err != nil {
		return 0, 0, 0, err
	}
	return time.Since(start), turnsA, turnsB, p.checkBounces()
}

// idleLinks brings up n links (local domains base..base+n-1 to the
// receiver) at once and returns the time until the last one delivered its
// first stanza. The links stay up.
func (p *libPair) idleLinks(ctx context.Context, base, n int) (time.Duration, error) {
	c := newCounter(n)
	p.handle(false, func(s2s.Stanza) { c.add() })
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = messageFor(senderDomain(base + i))
	}
	start := time.Now()
	for _, m := range msgs {
		if err := p.a.Send(ctx, m); err != nil {
			return 0, err
		}
	}
	if err := waitFor(ctx, c.done, "link set-up", p); err != nil {
		return 0, err
	}
	return time.Since(start), p.checkBounces()
}
