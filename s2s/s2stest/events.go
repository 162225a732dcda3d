package s2stest

import (
	"context"
	"fmt"
	"sync"

	"github.com/xmpp-s2s/federation/s2s"
)

// Events records the events of a Manager under test, so that a test can wait
// for one instead of writing its own channel and loop. Set Observe as the
// host's s2s.Config.Observer, or call it from the host's own Observer. The
// zero value is ready to use; an Events is safe for concurrent use.
//
// Every kind is recorded except s2s.StanzaIn and s2s.StanzaOut, which a
// load test would pile up (the stanzas themselves are the host's Deliver's
// and the stub's Received).
type Events struct {
	mu      sync.Mutex
	items   []s2s.Event
	taken   []bool        // which items Wait has returned
	changed chan struct{} // closed at the next append; nil until first wait
}

// Observe records e. It is an s2s.Observer: quick, and never blocks.
func (r *Events) Observe(e s2s.Event) {
	if e.Kind == s2s.StanzaIn || e.Kind == s2s.StanzaOut {
		return
	}
	r.mu.Lock()
	r.items = append(r.items, e)
	r.taken = append(r.taken, false)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
}

// All returns the events recorded so far, in the order they were observed.
func (r *Events) All() []s2s.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]s2s.Event(nil), r.items...)
}

// Wait returns the first recorded event of kind for the pair (local,
// remote) that Wait has not returned before, waiting for it until ctx ends.
// An empty local or remote matches any domain; for Bounced events the pair
// is the bounced stanza's from and to domains, and for the other kinds
// Event.Link's. Events recorded before the call count, so a test may wait
// after the action that causes the event. On ctx's end, the error names
// what was awaited and what was seen.
func (r *Events) Wait(ctx context.Context, kind s2s.EventKind, local, remote string) (s2s.Event, error) {
	for {
		r.mu.Lock()
		for i, e := range r.items {
			if !r.taken[i] && e.Kind == kind && matches(e, local, remote) {
				r.taken[i] = true
				r.mu.Unlock()
				return e, nil
			}
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed, n := r.changed, len(r.items)
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return s2s.Event{}, fmt.Errorf("s2stest: no %s event for %s -> %s among %d: %w",
				kind, orAny(local), orAny(remote), n, ctx.Err())
		}
	}
}

func matches(e s2s.Event, local, remote string) bool {
	l, r := e.Link.Local, e.Link.Remote
	if e.Kind == s2s.Bounced {
		l, r = domainOf(e.Bounce.Stanza.From), domainOf(e.Bounce.Stanza.To)
	}
	return (local == "" || local == l) && (remote == "" || remote == r)
}

// domainOf returns the domain part of a JID.
func domainOf(j string) string {
	for i := 0; i < len(j); i++ {
		if j[i] == '/' {
			j = j[:i]
			break
		}
	}
	for i := len(j) - 1; i >= 0; i-- {
		if j[i] == '@' {
			return j[i+1:]
		}
	}
	return j
}

func orAny(d string) string {
	if d == "" {
		return "any"
	}
	return d
}
