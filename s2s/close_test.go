package s2s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
)

// closes counts, per connection, the </stream:stream> that party wrote on
// it, every write included (not only up to the first close, as text does).
func (r *recorder) closes(party string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, t := range r.order {
		c := 0
		for _, ch := range t.chunks {
			if ch.party == party {
				c += bytes.Count(ch.data, []byte("</stream:stream>"))
			}
		}
		n = append(n, c)
	}
	return n
}

// TestStreamClosedOnce: each side ends each stream with one
// </stream:stream>, whoever closes first and why: our idle timer or
// Shutdown (we close, the peer answers), the peer's Shutdown (the peer
// closes, we answer), Reload's policy (we close with the reason). An
// outgoing link that closed its stream and then read the peer's answering
// close used to write a second one.
func TestStreamClosedOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, a, b *node)
	}{
		{"a shuts down", func(t *testing.T, a, b *node) { shutdown(t, a) }},
		{"b shuts down", func(t *testing.T, a, b *node) { shutdown(t, b) }},
		{"a's idle timer", nil},
		{"a's policy denies b", func(t *testing.T, a, b *node) {
			a.reload(func(s *config.S2S) {
				s.HostPolicy = []config.HostPolicy{{Host: "b.test", Policy: "deny"}}
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"false", "required"} {
				rec := newRecorder()
				idle := time.Duration(0)
				if tc.end == nil {
					idle = 200 * time.Millisecond
				}
				opts := func(party string) []nodeOpt {
					return []nodeOpt{withMode(mode), withConfig(func(c *Config) {
						c.tap = rec.tap(party)
						if idle > 0 {
							c.IdleTimeout = idle
						}
					})}
				}
				a, b := pairNodes(t, opts("a"), opts("b"))
				a.send(msgAB)
				b.nextDelivered()
				if tc.end != nil {
					tc.end(t, a, b)
				}
				// Both ends of the link a → b are down: each side has
				// written whatever it was going to.
				awaitDown(t, a, Outgoing)
				awaitDown(t, b, Incoming)
				shutdown(t, a)
				shutdown(t, b)
				for _, party := range []string{"a", "b"} {
					for i, n := range rec.closes(party) {
						if n > 1 {
							t.Errorf("%s: %s wrote </stream:stream> %d times on connection %d", mode, party, n, i+1)
						}
					}
				}
			}
		})
	}
}

func shutdown(t *testing.T, n *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// awaitDown waits for the LinkDown of n's link in direction dir, and
// returns it.
func awaitDown(t *testing.T, n *node, dir Direction) Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-n.events:
			if e.Kind == LinkDown && e.Link.Direction == dir {
				return e
			}
		case <-deadline:
			t.Fatalf("no LinkDown %v", dir)
		}
	}
}

// noLinkDown fails the test if n reported a LinkDown among the events it
// has reported so far; while says what the test was doing.
func noLinkDown(t *testing.T, n *node, while string) {
	t.Helper()
	for {
		select {
		case e := <-n.events:
			if e.Kind == LinkDown {
				t.Fatalf("%s: %v's %s link down: %v", while, n.domains, e.Link.Direction, e.Err)
			}
		default:
			return
		}
	}
}

// TestIdleLinkParks: once an up link has written everything, its owner
// goroutine ends; the link keeps its stream (its reader) and nothing else,
// and the next stanza starts an owner that writes it on the same stream.
func TestIdleLinkParks(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	for i := range 50 {
		a.send(fmt.Sprintf(`<message from='a.test' to='b@b.test' id='%d'/>`, i))
	}
	for range 50 {
		b.nextDelivered()
	}
	l := a.m.outLinkFor(pair{"a.test", "b.test"})
	if l == nil {
		t.Fatal("no link")
	}
	parked := func() (bool, linkStream) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.running && l.conn != nil, l.conn
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	ok, first := parked()
	for !ok {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the idle link's owner goroutine is still running")
		}
		ok, first = parked()
	}
	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "(*outLink).run(") {
		t.Fatalf("an owner goroutine runs for an idle link:\n%s", st)
	}
	a.send(msgAB)
	b.nextDelivered()
	if _, again := parked(); again != first {
		t.Fatal("the stanza after parking went on another stream")
	}
}

// TestFaultAfterBatch: the stream error our reader ends an outgoing
// stream with goes out after the batch being written, not between its
// flushes; it is the stream's only close; and a batch after it is refused
// (left to its writer to resend or bounce) instead of being counted
// written on a stream the peer no longer reads.
func TestFaultAfterBatch(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	m := &Manager{cfg: Config{WriteTimeout: wait}}
	oc := &outConn{conn: c1, ob: dialback.NewOutbound(nil, "s1"), done: make(chan struct{}), writeTimeout: wait}
	oc.refs.Store(1)
	batch, wrote := writingBatch(t, oc, c2)
	faulted := make(chan struct{})
	go func() {
		oc.fault(m, newStreamFault(stream.PolicyViolation, "test"))
		close(faulted)
	}()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("</stream:stream>")) {
		n, err := c2.Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the batch: %v", err)
	}
	<-faulted
	errAt := bytes.Index(got, []byte(`<error xmlns="http://etherx.jabber.org/streams"`))
	if errAt < 0 || bytes.Count(got[:errAt], []byte("</message>")) != 3 {
		t.Errorf("the stream error (at %d) came after %d of the batch's 3 stanzas", errAt, bytes.Count(got[:max(errAt, 0)], []byte("</message>")))
	}
	if n, err := oc.writeBatch(nil, batch[:1]); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("a batch after the stream error: wrote %d, err %v; want 0 and net.ErrClosed", n, err)
	}
	// The owner's close that follows writes nothing more: the error
	// closed the stream.
	go oc.close(true, errors.New("the reader ended"))
	rest, _ := io.ReadAll(c2)
	if len(rest) != 0 {
		t.Errorf("after the stream error's close: %q", rest)
	}
}

// TestOwnerLingers: an up link's owner that has written everything waits
// a moment for more before it parks; a stanza in that moment wakes it (no
// new owner starts) and is written, and after the moment it parks.
func TestOwnerLingers(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	a.send(msgAB)
	b.nextDelivered()
	l := a.m.outLinkFor(pair{"a.test", "b.test"})
	if l == nil {
		t.Fatal("no link")
	}
	state := func() (lingering, running bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.wake != nil, l.running
	}
	// Catch the owner lingering: each stanza ends with one (the link's
	// first batches may also wait for XEP-0198's <enabled/>, so try a few).
	caught := false
	for range 50 {
		a.send(msgAB)
		b.nextDelivered()
		l.mu.Lock()
		lingering := l.wake != nil
		if lingering {
			// Still holding the lock: the wake comes before the linger
			// can end, so the same owner writes this stanza.
			caught = true
			st, err := ParseStanza([]byte(msgAB))
			if err != nil {
				l.mu.Unlock()
				t.Fatal(err)
			}
			st.seq = a.m.seq.Add(1) // as enqueue does
			l.queue = append(l.queue, st)
			l.wakeLocked()
			if l.wake != nil || !l.running {
				l.mu.Unlock()
				t.Fatal("the wake did not reach the lingering owner")
			}
		}
		l.mu.Unlock()
		if lingering {
			b.nextDelivered()
			break
		}
	}
	if !caught {
		t.Fatal("the owner never lingered after a batch")
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for {
		if lingering, running := state(); !lingering && !running {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the owner never parked")
		}
	}
}

// TestIncomingIdleCountsPeerStanzas: an incoming stream whose peer keeps
// sending, at intervals well under IdleTimeout, stays up for several times
// IdleTimeout and delivers everything; once the peer stops, it ends as
// idle. Nothing else moves on it: no XEP-0198, no bidi, no keepalive, and
// the sender never idles. The reader moves its deadline once per read
// that brought bytes, not per element (incoming.go): each of these
// stanzas comes in a read of its own.
func TestIncomingIdleCountsPeerStanzas(t *testing.T) {
	const idle = 400 * time.Millisecond
	quiet := func(idle time.Duration) nodeOpt {
		return withConfig(func(c *Config) {
			c.DisableStreamManagement, c.DisableBidi, c.KeepAlive, c.IdleTimeout = true, true, -1, idle
		})
	}
	a, b := pairNodes(t, []nodeOpt{quiet(-1)}, []nodeOpt{quiet(idle)})
	tick := time.NewTicker(idle / 8)
	defer tick.Stop()
	end := time.Now().Add(4 * idle)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		a.send(fmt.Sprintf("<message from='alice@a.test' to='bob@b.test' id='ab%d'/>", i))
		if got := b.nextDelivered(); got.ID != fmt.Sprintf("ab%d", i) {
			t.Fatalf("b got %s", got.ID)
		}
	}
	noLinkDown(t, b, "while a.test wrote")
	if e := awaitDown(t, b, Incoming); !errors.Is(e.Err, ErrIdle) {
		t.Fatalf("the quiet stream ended with %v, not idle", e.Err)
	}
}

// TestIncomingSlowDeliverNotIdle: a host whose Deliver takes longer than
// IdleTimeout over one of three stanzas that came in one read does not
// make the stream look idle: the read deadline is moved just before
// the next read, not when the elements before it were read. (Moved once
// per read as the bytes came, it was in the past by the time the reader
// read again after the slow Deliver, and the stream ended as idle while
// its peer was talking.)
func TestIncomingSlowDeliverNotIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := authorityFor(t, []string{"x.test"}, withConfig(func(c *Config) {
		c.IdleTimeout, c.KeepAlive = idle, -1
		deliver := c.Deliver
		c.Deliver = func(s Stanza) {
			if s.ID == "slow" {
				// The host's slow work (a database, say): the
				// scenario itself, not a wait for another goroutine.
				time.Sleep(2 * idle)
			}
			deliver(s)
		}
	}))
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	p.write("<message from='u@x.test' to='v@b.test' id='first'/><message from='u@x.test' to='v@b.test' id='slow'/><message from='u@x.test' to='v@b.test' id='next'/>")
	for _, id := range []string{"first", "slow", "next"} {
		if got := b.nextDelivered(); got.ID != id {
			t.Fatalf("delivered %q, want %q", got.ID, id)
		}
	}
	p.write("<message from='u@x.test' to='v@b.test' id='after'/>")
	if got := b.nextDelivered(); got.ID != "after" {
		t.Fatalf("delivered %q, want after", got.ID)
	}
	noLinkDown(t, b, "after the slow Deliver")
}
