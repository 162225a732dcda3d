package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/policy"
)

func TestShutdownDrains(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	const n = 200
	for i := range n {
		a.send(fmt.Sprintf(`<message from='a.test' to='b@b.test' id='%d'/>`, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything was written before Shutdown returned; b delivers it in
	// order.
	for i := range n {
		if got := b.nextDelivered(); got.ID != fmt.Sprint(i) {
			t.Fatalf("delivered %s, want %d", got.ID, i)
		}
	}
	if len(a.bounced) != 0 {
		t.Fatalf("%d bounced", len(a.bounced))
	}
	// After shutdown, Send bounces and Serve refuses.
	a.send(msgAB)
	if bo := a.nextBounce(); bo.Condition != stanza.ServiceUnavailable {
		t.Fatalf("bounce %s", bo.Condition)
	}
	if err := a.m.Serve(listen(t)); err != ErrClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestReloadClosesDeniedLinks(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	a.send(msgAB)
	b.nextDelivered()
	b.send(msgBA)
	a.nextDelivered()
	if len(a.m.Links()) != 2 {
		t.Fatalf("links %+v", a.m.Links())
	}
	// Both of a's links report the policy as the reason, not the closed
	// connection that closing them caused.
	a.denyBoth("b.test", "federation with b.test is no longer allowed")
	// b sees its link to a closed before it sends again; a stanza written
	// to a stream in the moment before would be lost with it.
	waitEvent(t, b, LinkDown)
	waitEvent(t, b, LinkDown)
	if l := a.m.Links(); len(l) != 0 {
		t.Fatalf("links after reload %+v", l)
	}
	a.send(msgAB)
	if bo := a.nextBounce(); bo.Condition != stanza.PolicyViolation {
		t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
	}
	// b's new attempt to a is refused too.
	b.send(msgBA)
	if bo := b.nextBounce(); !strings.Contains(bo.Text, "policy-violation") {
		t.Fatalf("b bounce %s: %s", bo.Condition, bo.Text)
	}
}

func TestReloadBadConfigChangesNothing(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	s := a.m.settings().s2s
	s.Ciphers = "NO-SUCH-CIPHER"
	s.DefaultPolicy = "deny"
	if err := a.m.Reload(s); err == nil || !strings.Contains(err.Error(), "NO-SUCH-CIPHER") {
		t.Fatalf("Reload: %v", err)
	}
	a.send(msgAB)
	b.nextDelivered()
}

// TestPeerVanishes kills b's connections while a sends: every stanza is
// delivered or bounced (XEP-0198 is on: what the reset caught
// unacknowledged is sent again); none is bounced twice.
func TestPeerVanishes(t *testing.T) {
	la := listen(t)
	lb := listen(t)
	cl := &closingListener{Listener: lb}
	b := newNode(t, cl, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)})
	log := newWriteLog()
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Observer = log.observe }))
	const n = 2000
	for i := range n {
		a.send(fmt.Sprintf(`<message from='a.test' to='b@b.test' id='%d'><body>%s</body></message>`, i, strings.Repeat("x", 200)))
		if i == n/2 {
			cl.killAll()
		}
	}
	bounced := log.await(t, a, n, wait, nil)
	delivered := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a.m.Shutdown(ctx)
	b.m.Shutdown(ctx)
	close(b.delivered)
	for s := range b.delivered {
		delivered[s.ID]++
	}
	written := log.snapshot()
	lost := 0
	for i := range n {
		id := fmt.Sprint(i)
		// With XEP-0198, a stanza the reset caught unacknowledged is
		// written once more, or bounced once when it cannot be.
		if written[id] > 2 || bounced[id] > 1 || delivered[id] > written[id] {
			t.Fatalf("stanza %s: written %d, bounced %d, delivered %d", id, written[id], bounced[id], delivered[id])
		}
		if delivered[id] == 0 && bounced[id] == 0 {
			lost++
		}
	}
	t.Logf("of %d: %d delivered, %d bounced, %d lost", n, len(delivered), len(bounced), lost)
	if lost != 0 {
		t.Fatalf("%d stanzas neither delivered nor bounced", lost)
	}
}

// closingListener remembers its connections so a test can cut them all.
type closingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *closingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *closingListener) killAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as when the process dies
		}
		c.Close()
	}
}

// TestReloadAsksPolicyUnlocked: Reload asks the host's Policy about every
// link with no lock of the Manager held, so a Policy may look at the
// Manager (here Links, which takes the Manager's lock) or take its time
// without stopping Send and the links.
func TestReloadAsksPolicyUnlocked(t *testing.T) {
	var m atomic.Pointer[Manager]
	var reloading atomic.Bool
	asked := make(chan []LinkInfo, 4)
	pol := policy.Func(func(ctx context.Context, host string) policy.Decision {
		if reloading.Load() {
			asked <- m.Load().Links()
		}
		return policy.Decision{Host: host, Action: policy.Allow, Rule: policy.DefaultRule}
	})
	a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) { c.Policy = pol })}, nil)
	m.Store(a.m)
	a.send(msgAB)
	b.nextDelivered()

	reloading.Store(true)
	done := make(chan error, 1)
	go func() { done <- a.m.Reload(a.m.settings().s2s) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Reload did not return: it holds the Manager's lock while asking the Policy")
	}
	if got := <-asked; len(got) == 0 {
		t.Error("the Policy saw no links")
	}
	a.send(msgAB)
	b.nextDelivered()
}

// TestPolicyAskedPerLink: Send asks the Policy when a remote domain gets a
// link and after each Reload, not for every stanza (Config.Policy); an
// answer that changed reaches the live link at the next Reload, which
// closes it, and the next stanza is bounced with policy-violation.
func TestPolicyAskedPerLink(t *testing.T) {
	var asked atomic.Int64
	var deny atomic.Bool
	pol := policy.Func(func(ctx context.Context, host string) policy.Decision {
		if host == "b.test" {
			asked.Add(1)
		}
		if deny.Load() {
			return policy.Decision{Host: host, Action: policy.Deny, Rule: policy.HostRule}
		}
		return policy.Decision{Host: host, Action: policy.Allow, Rule: policy.DefaultRule}
	})
	a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) { c.Policy = pol })}, nil)
	a.send(msgAB)
	b.nextDelivered()
	if n := asked.Load(); n != 1 {
		t.Fatalf("the Policy was asked %d times for the first stanza, want 1", n)
	}
	for range 20 {
		a.send(msgAB)
		b.nextDelivered()
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the Policy was asked %d times for 21 stanzas on one link, want 1", n)
	}

	// Reload asks about the live link; the stanza after it asks again.
	if err := a.m.Reload(a.m.settings().s2s); err != nil {
		t.Fatal(err)
	}
	afterReload := asked.Load()
	if afterReload < 2 {
		t.Fatalf("Reload did not ask the Policy about the live link (asked %d times)", afterReload)
	}
	a.send(msgAB)
	b.nextDelivered()
	if n := asked.Load(); n != afterReload+1 {
		t.Fatalf("the first stanza after Reload asked the Policy %d times, want 1", n-afterReload)
	}

	// A changed answer applies at the next Reload: the link is closed,
	// and the next stanza is refused.
	deny.Store(true)
	if err := a.m.Reload(a.m.settings().s2s); err != nil {
		t.Fatal(err)
	}
	a.send(msgAB)
	if bo := a.nextBounce(); bo.Condition != stanza.PolicyViolation || !errors.Is(bo.Err, ErrDenied) {
		t.Fatalf("after the Reload that denies b.test: bounced %s (%v), want policy-violation wrapping ErrDenied", bo.Condition, bo.Err)
	}
}
