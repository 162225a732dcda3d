package s2s

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
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

// awaitDown waits for the LinkDown of n's link in direction dir.
func awaitDown(t *testing.T, n *node, dir Direction) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-n.events:
			if e.Kind == LinkDown && e.Link.Direction == dir {
				return
			}
		case <-deadline:
			t.Fatalf("no LinkDown %v", dir)
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
