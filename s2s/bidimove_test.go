package s2s

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
)

// TestBidiSimultaneousFirstStreams: a.test and b.test open their first
// streams to each other at the same moment (each listener holds the
// other's connection until both were made), so each link is on a
// connection of its own. They converge on one: the connection a.test
// opened stays (a.test sorts first), b.test's link moves onto it once
// a.test has everything b.test wrote on its own, and closes its own.
// Stanzas sent both ways throughout arrive once each, in order.
func TestBidiSimultaneousFirstStreams(t *testing.T) {
	for i, tc := range []struct {
		mode     string
		external bool
		noSM     bool
	}{
		{mode: "false"},
		{mode: "false", noSM: true},
		{mode: "required_trusted", external: true},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			la, lb := newOpenListener(t), newOpenListener(t)
			la.accepts, lb.accepts = make(chan struct{}), make(chan struct{})
			gate := make(chan struct{})
			la.gate, lb.gate = gate, gate
			opts := []nodeOpt{withMode(tc.mode), withConfig(func(c *Config) {
				c.DisableSASLExternal = !tc.external
				c.DisableStreamManagement = tc.noSM
			})}
			a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)}, opts...)
			b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, opts...)
			a.send("<message from='u@a.test' to='v@b.test' id='0'/>")
			b.send("<message from='v@b.test' to='u@a.test' id='0'/>")
			// Both connections are made before either stream starts:
			// the first connection each listener accepts is then the
			// other's link, not a dialback verification that a stream
			// already under way made (under load, a link slow to dial
			// found the peer's authenticated stream and used it, and
			// there was nothing to converge).
			<-la.accepts
			<-lb.accepts
			close(gate)
			stop := make(chan struct{})
			defer close(stop)
			for _, l := range []*openListener{la, lb} {
				go func() {
					for {
						select {
						case <-l.accepts:
						case <-stop:
							return
						}
					}
				}()
			}
			const n = 40
			got := map[*node][]string{}
			recv := func(to *node, want int) {
				for len(got[to]) < want {
					s := to.nextDelivered()
					got[to] = append(got[to], s.ID)
				}
			}
			for j := 1; j < n/2; j++ {
				a.send(fmt.Sprintf("<message from='u@a.test' to='v@b.test' id='%d'/>", j))
				b.send(fmt.Sprintf("<message from='v@b.test' to='u@a.test' id='%d'/>", j))
			}
			recv(a, n/2)
			recv(b, n/2)
			// One long-lived connection: a.test's. Under dialback a.test
			// verified b.test's key on a connection of its own to b.test,
			// which closes once answered, maybe only now.
			la.waitOpen(t, 0)
			lb.waitOpen(t, 1)
			if _, open := lb.counts(); open != 1 {
				t.Errorf("b.test has %d connections open, want a.test's one", open)
			}
			for j := n / 2; j < n; j++ {
				a.send(fmt.Sprintf("<message from='u@a.test' to='v@b.test' id='%d'/>", j))
				b.send(fmt.Sprintf("<message from='v@b.test' to='u@a.test' id='%d'/>", j))
			}
			recv(a, n)
			recv(b, n)
			for _, nd := range []*node{a, b} {
				for j, id := range got[nd] {
					if id != strconv.Itoa(j) {
						t.Fatalf("%v received %v, want 0..%d in order, once each", nd.domains, got[nd], n-1)
					}
				}
			}
			if _, open := la.counts(); open != 0 {
				t.Errorf("a.test has %d connections open after the move", open)
			}
			for _, nd := range []*node{a, b} {
				// The stream b.test closed leaves a.test's incoming
				// links once its reader has seen the close.
				waitLinks(t, nd, "both directions on one stream", func(links []LinkInfo) bool {
					return len(links) == 2 && links[0].Stream == links[1].Stream
				})
			}
			moved := false
			for len(b.events) > 0 {
				e := <-b.events
				moved = moved || e.Kind == LinkDown && errors.Is(e.Err, errMoved)
			}
			if !moved {
				t.Error("b.test's link did not report its move")
			}
		})
	}
}
