package s2stest

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

// TestEventsWait: Wait finds events recorded before it was called, matches
// the kind and the pair (empty matching any; a bounce by its stanza's
// domains), returns each event once, skips stanza events, and on ctx's end
// names what it waited for.
func TestEventsWait(t *testing.T) {
	var r Events
	link := func(k s2s.EventKind, local, remote string) s2s.Event {
		return s2s.Event{Kind: k, Link: s2s.LinkInfo{Local: local, Remote: remote}}
	}
	r.Observe(link(s2s.LinkUp, "a.test", "b.test"))
	r.Observe(link(s2s.StanzaIn, "a.test", "b.test"))
	r.Observe(link(s2s.LinkFailed, "a.test", "c.test"))
	r.Observe(link(s2s.LinkUp, "a.test", "c.test"))
	r.Observe(s2s.Event{Kind: s2s.Bounced, Bounce: s2s.Bounce{Stanza: s2s.Stanza{From: "x@a.test/r", To: "c.test", ID: "b1"}}})
	if n := len(r.All()); n != 4 {
		t.Fatalf("recorded %d events, want 4 (no stanza events)", n)
	}
	ctx := context.Background()
	for i, tc := range []struct {
		kind          s2s.EventKind
		local, remote string
		want          string // the remote of the event found
	}{
		0: {s2s.LinkUp, "a.test", "c.test", "c.test"},
		1: {s2s.LinkUp, "", "", "b.test"}, // the c.test one was taken
		2: {s2s.LinkFailed, "", "c.test", "c.test"},
		3: {s2s.Bounced, "a.test", "c.test", ""},
	} {
		e, err := r.Wait(ctx, tc.kind, tc.local, tc.remote)
		if err != nil || e.Kind != tc.kind || e.Link.Remote != tc.want {
			t.Errorf("%d: Wait = %v %+v, %v", i, e.Kind, e.Link, err)
		}
	}

	// Nothing left: Wait blocks until an event arrives, or until ctx ends.
	got := make(chan s2s.Event)
	go func() {
		e, _ := r.Wait(ctx, s2s.LinkDown, "a.test", "b.test")
		got <- e
	}()
	r.Observe(link(s2s.LinkDown, "a.test", "other.test"))
	r.Observe(link(s2s.LinkDown, "a.test", "b.test"))
	if e := <-got; e.Link.Remote != "b.test" {
		t.Errorf("Wait after Observe = %+v", e.Link)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	_, err := r.Wait(ended, s2s.LinkUp, "a.test", "b.test")
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "no link-up event for a.test -> b.test") {
		t.Errorf("Wait with an ended ctx: %v", err)
	}
}

// TestMisbehaviourEvents: what the package doc says the host sees for each
// misbehaviour that fails the host's outgoing link, checked with Events:
// one LinkFailed for the pair, whose Err says why, and the bounce condition.
func TestMisbehaviourEvents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*Server)
		is    error // wrapped by the LinkFailed event's Err
		cond  stanza.Condition
	}{
		{"deny", func(s *Server) { s.SetDialback(DialbackDeny) }, s2s.ErrAuth, stanza.RemoteServerNotFound},
		{"stall", func(s *Server) { s.SetStall(true) }, context.DeadlineExceeded, stanza.RemoteServerTimeout},
		{"close", func(s *Server) { s.Close() }, syscall.ECONNREFUSED, stanza.RemoteServerNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events Events
			h, stub := newPair(t, "false", func(c *s2s.Config) {
				c.Observer = events.Observe
				c.NegotiationTimeout = time.Second
			})
			tc.setup(stub)
			h.send(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			e, err := events.Wait(ctx, s2s.LinkFailed, hostDomain, stubDomain)
			if err != nil {
				t.Fatal(err)
			}
			if e.Link.Direction != s2s.Outgoing || !errors.Is(e.Err, tc.is) {
				t.Errorf("LinkFailed %s: %v, want it to wrap %v", e.Link.Direction, e.Err, tc.is)
			}
			b, err := events.Wait(ctx, s2s.Bounced, hostDomain, stubDomain)
			if err != nil {
				t.Fatal(err)
			}
			if b.Bounce.Condition != tc.cond || b.Bounce.Stanza.ID != "m1" {
				t.Errorf("bounce %s %s: %s", b.Bounce.Stanza.ID, b.Bounce.Condition, b.Bounce.Text)
			}
			h.nextBounce()
		})
	}
}
