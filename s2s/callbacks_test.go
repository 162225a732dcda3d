package s2s

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
)

// stallListener accepts connections and never answers, so that an outgoing
// link to it stays connecting with its stanzas queued.
func stallListener(t *testing.T) net.Listener {
	t.Helper()
	ln := listen(t)
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestBounceWaitsForCaller: a host whose Bounce callback blocks until the
// Manager call that caused the bounce has returned (as a host does whose
// Bounce writes to a channel that the calling goroutine reads afterwards)
// does not deadlock Send, Reload, Shutdown or Close; the bounces arrive
// afterwards, in order, and Done closes once they were handed over.
func TestBounceWaitsForCaller(t *testing.T) {
	for i, tc := range []struct {
		timeout time.Duration // NegotiationTimeout
		call    func(m *Manager) error
		cond    stanza.Condition
		queued  bool // the stanzas wait on a link (else Send bounces them)
	}{
		0: { // Send bounces a stanza from a domain that is not local
			call: func(m *Manager) error {
				for i := range 3 {
					raw := fmt.Sprintf(`<message from='x.test' to='y@stall.test' id='%d'/>`, i)
					if err := m.Send(context.Background(), []byte(raw)); err != nil {
						return err
					}
				}
				return nil
			},
			cond: stanza.NotAllowed,
		},
		1: { // Reload denies the host of a connecting link
			call: func(m *Manager) error {
				s := m.settings().s2s
				s.HostPolicy = []config.HostPolicy{{Host: "stall.test", Policy: "deny"}}
				return m.Reload(s)
			},
			cond: stanza.PolicyViolation, queued: true,
		},
		2: { // Close bounces what waits
			call: func(m *Manager) error { return m.Close() },
			cond: stanza.ServiceUnavailable, queued: true,
		},
		3: { // Shutdown waits for the attempt, which times out and bounces
			timeout: 300 * time.Millisecond,
			call:    func(m *Manager) error { return m.Shutdown(context.Background()) },
			cond:    stanza.RemoteServerTimeout, queued: true,
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			returned := make(chan struct{})
			bounced := make(chan Bounce, 10)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = wait
			}
			a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"stall.test": addrOf(stallListener(t))},
				withConfig(func(c *Config) { c.NegotiationTimeout = timeout }),
				withConfig(func(c *Config) {
					c.Bounce = func(b Bounce) {
						<-returned
						bounced <- b
					}
				}))
			if tc.queued {
				for i := range 3 {
					a.send(fmt.Sprintf(`<message from='a.test' to='y@stall.test' id='%d'/>`, i))
				}
			}
			done := make(chan error, 1)
			go func() { done <- tc.call(a.m) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(wait):
				t.Fatal("the call did not return: its bounces were delivered on its goroutine")
			}
			close(returned)
			for i := range 3 {
				select {
				case b := <-bounced:
					if b.Stanza.ID != strconv.Itoa(i) || b.Condition != tc.cond {
						t.Fatalf("bounce %d: %s %s: %s", i, b.Stanza.ID, b.Condition, b.Text)
					}
				case <-time.After(wait):
					t.Fatalf("bounce %d not delivered", i)
				}
			}
			if err := a.m.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-a.m.Done():
			case <-time.After(wait):
				t.Fatal("Done not closed after Shutdown")
			}
		})
	}
}

// TestDoneAfterLastBounce: Done is not closed while a bounce made before
// Shutdown returned is still being handed to the host.
func TestDoneAfterLastBounce(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	a := newNode(t, listen(t), []string{"a.test"}, nil, withConfig(func(c *Config) {
		c.Bounce = func(Bounce) {
			entered <- struct{}{}
			<-release
		}
	}))
	a.send(`<message from='x.test' to='y@b.test' id='1'/>`)
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("no bounce")
	}
	if err := a.m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.m.Done():
		t.Fatal("Done closed while Bounce runs")
	default:
	}
	close(release)
	select {
	case <-a.m.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed")
	}
}
