package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/faultproxy"
)

// proxyFault is one way the network breaks a link under traffic, injected
// through a faultproxy between a.test's outgoing link and b.test.
type proxyFault struct {
	name string
	// inject breaks the proxied connections, d being the direction the
	// stanzas flow in; it says how many connections it hit.
	inject func(p *faultproxy.Proxy, d faultproxy.Direction) int
	// silent: the fault gives no error; only the keepalive finds it.
	silent bool
}

var proxyFaults = []proxyFault{
	// The peer's host vanished, or a NAT forgot the link: writes succeed
	// and nothing arrives, either way.
	{"half-open", func(p *faultproxy.Proxy, _ faultproxy.Direction) int { return p.Silence() }, true},
	{"reset", func(p *faultproxy.Proxy, _ faultproxy.Direction) int { return p.Reset() }, false},
	// 40 bytes go missing some way into what is being written: the peer
	// sees a broken stream (bad XML, or a TLS record that fails its MAC)
	// and ends it.
	{"drop-bytes", func(p *faultproxy.Proxy, d faultproxy.Direction) int { return p.Drop(d, 700, 40) }, false},
}

// proxyRun is the outcome of one run: per stanza id, how often it was
// written, delivered and bounced.
type proxyRun struct {
	n                           int
	written, delivered, bounced map[string]int
}

// settle shuts a and b down, so that whatever is still on its way lands
// or bounces, waits for the bounces of from (the sending node), takes the
// last of what take counts and records what the proxy saw written.
func (r *proxyRun) settle(t *testing.T, a, b, from *node, log *writeLog, take func(block bool)) {
	t.Helper()
	sctx, scancel := context.WithTimeout(context.Background(), wait)
	defer scancel()
	if err := a.m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := b.m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	<-from.m.Done()
	take(false)
	r.written = log.snapshot()
}

// report logs the run's figures, and with strict fails it when a stanza
// was lost.
func (r proxyRun) report(t *testing.T, strict bool) {
	t.Helper()
	d, b, lost, dup, both := r.account(t)
	t.Logf("of %d: %d delivered (%d duplicates), %d bounced (%d of them delivered before the link died), %d lost", r.n, d, dup, b, both, lost)
	if strict && lost != 0 {
		t.Fatalf("%d stanzas neither delivered nor bounced with XEP-0198 on", lost)
	}
}

// account checks every stanza and returns the figures: each is bounced at
// most once; delivered ones were written; a stanza neither delivered nor
// bounced is lost.
func (r proxyRun) account(t *testing.T) (delivered, bounced, lost, duplicates, both int) {
	t.Helper()
	for i := range r.n {
		id := strconv.Itoa(i)
		w, d, b := r.written[id], r.delivered[id], r.bounced[id]
		if b > 1 {
			t.Errorf("stanza %s bounced %d times", id, b)
		}
		if d > 0 && w == 0 {
			t.Errorf("stanza %s delivered but never written", id)
		}
		if d > 0 {
			delivered++
			duplicates += d - 1
		}
		if b > 0 {
			bounced++
		}
		if d > 0 && b > 0 {
			both++
		}
		if d == 0 && b == 0 {
			lost++
		}
	}
	return
}

// proxyKeepAlive is the keepalive of the runs, on a fake clock that the
// test moves: the detection of a half-open link is counted in intervals,
// not timed.
const proxyKeepAlive = 30 * time.Second

// TestProxyFaults sends stanzas at a steady pace from a.test to b.test
// through a proxy that breaks the link halfway, and accounts for every
// one: delivered (once or more), bounced (once) or lost. With XEP-0198
// (the default) none may be lost: the half-open link is found by the
// keepalive within two intervals, and what it had not acknowledged goes
// to the next link. Without it, stanzas written into the broken link may
// be lost (the contract is "written or bounced"); the test reports how
// many.
func TestProxyFaults(t *testing.T) { testProxyFaults(t, false) }

// TestProxyFaultsReverse is TestProxyFaults for the reverse direction of
// a bidi stream (XEP-0288): a.test opens the stream through the proxy,
// and b.test's stanzas to a.test travel back over it, written by b.test's
// link through its view of the incoming stream. With XEP-0198 (enabled by
// a.test on its stream, and counted both ways) none may be lost: b.test
// finds a half-open stream by its keepalive within two intervals (its
// <r/> unanswered), and what a.test had not acknowledged goes back to
// b.test's link, which sends it again on a new connection. Without it,
// the reverse direction is "written or bounced", and an incoming stream is
// not probed: the test reports what was lost.
func TestProxyFaultsReverse(t *testing.T) { testProxyFaults(t, true) }

// testProxyFaults runs every fault with and without XEP-0198, for our
// direction of the stream or its reverse.
func testProxyFaults(t *testing.T, reverse bool) {
	for i, f := range proxyFaults {
		for _, smOn := range []bool{true, false} {
			name := strconv.Itoa(i) + "-" + f.name + "-sm"
			if !smOn {
				name += "-off"
			}
			t.Run(name, func(t *testing.T) {
				runProxyFault(t, f, smOn, reverse).report(t, smOn)
			})
		}
	}
}

// runProxyFault runs n stanzas through the proxy, injecting the fault
// halfway, and returns the accounting once every stanza was delivered or
// bounced (with SM) or written or bounced (without). Reverse sends them
// from b.test back over a.test's bidi stream instead of from a.test.
// extra options go to both nodes.
func runProxyFault(t *testing.T, f proxyFault, smOn, reverse bool, extra ...nodeOpt) proxyRun {
	lb, la := listen(t), listen(t)
	p, err := faultproxy.New(lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	log := newWriteLog()
	clk := newFakeClock()
	probed := make(chan struct{}, 16)
	downs := make(chan Event, 16)
	opts := func(c *Config) { c.DisableStreamManagement = !smOn }
	// The sender's clock is the test's, and its keepalive finds the
	// half-open link; its Observer logs what it wrote.
	sender := withConfig(func(c *Config) {
		opts(c)
		c.clock = clk
		c.KeepAlive = proxyKeepAlive
		c.probed = func(pair) { probed <- struct{}{} }
		c.probedIn = func(string, string) { probed <- struct{}{} }
		c.Observer = func(e Event) {
			log.observe(e)
			if e.Kind == LinkDown && e.Link.Direction == Outgoing {
				downs <- e
			}
		}
	})
	// What the sender reads through the proxy is counted (heardBytes): on
	// a's connections to the proxy, or on b's from it in reverse.
	heard := &heardBytes{more: make(chan struct{}, 1)}
	aOpt, bOpt := sender, withConfig(opts)
	dir, toSender := faultproxy.Up, faultproxy.Down
	var bln net.Listener = lb
	counted := withConfig(func(c *Config) {
		c.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &heardConn{Conn: conn, h: heard}, nil
		}
	})
	if reverse {
		aOpt, bOpt, dir, toSender = bOpt, sender, faultproxy.Down, faultproxy.Up
		bln = &heardListener{Listener: lb, h: heard}
		counted = func(*Config) {}
	}
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": p.Addr()}, append([]nodeOpt{aOpt, counted}, extra...)...)
	b := newNode(t, bln, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, append([]nodeOpt{bOpt}, extra...)...)
	from, to, local, remote := a, b, "a.test", "b.test"
	if reverse {
		from, to, local, remote = b, a, "b.test", "a.test"
		// a.test's stream through the proxy, which b.test's stanzas
		// then ride back on.
		a.send(`<message from='a.test' to='b@b.test' id='open'/>`)
		if got := b.nextDelivered(); got.ID != "open" {
			t.Fatalf("b.test got %+v", got)
		}
	}
	stanzaAt := func(i int, body string) string {
		return fmt.Sprintf(`<message from='%s' to='x@%s' id='%d'>%s</message>`, local, remote, i, body)
	}

	const n, window = 1000, 50
	body := strings.Repeat("x", 200)
	r := proxyRun{n: n, delivered: map[string]int{}, bounced: map[string]int{}}
	take := func(block bool) {
		if block {
			select {
			case bo := <-from.bounced:
				r.bounced[bo.Stanza.ID]++
			case s := <-to.delivered:
				r.delivered[s.ID]++
			case <-log.progress:
			case <-time.After(wait):
				t.Fatalf("no progress: %d written, %d delivered, %d bounced", len(log.snapshot()), len(r.delivered), len(r.bounced))
			}
		}
		for {
			select {
			case bo := <-from.bounced:
				r.bounced[bo.Stanza.ID]++
			case s := <-to.delivered:
				r.delivered[s.ID]++
			default:
				return
			}
		}
	}
	// The link is up before the fault, with SM as asked.
	from.send(stanzaAt(0, ""))
	for len(r.delivered) == 0 {
		take(true)
	}
	if l := outgoing(from.m.Links()); len(l) != 1 || l[0].StreamManagement != smOn {
		t.Fatalf("links before the fault: %+v", l)
	}
	if reverse {
		// b.test's link rides on a.test's stream: no connection of its
		// own, and no other way around the proxy.
		in, _ := linkOf(b.m.Links(), Incoming, "b.test", "a.test")
		if l := outgoing(b.m.Links()); in.Stream == 0 || l[0].Stream != in.Stream {
			t.Fatalf("b.test's link back is not on a.test's stream: %+v, %+v", l, in)
		}
	}
	for i := 1; i < n; i++ {
		// Steady traffic: at most window stanzas ahead of what was
		// written or bounced.
		for i-len(log.snapshot())-len(r.bounced) > window {
			take(true)
		}
		from.send(stanzaAt(i, "<body>"+body+"</body>"))
		if i == n/2 {
			if hit := f.inject(p, dir); hit == 0 {
				t.Fatalf("%s hit no connection", f.name)
			}
		}
		// Without XEP-0198 an incoming stream is not probed (its peer
		// owes us no answer): nothing finds the silent stream b.test's
		// link writes to, and what it writes there is lost.
		if f.silent && i == n/2+window/2 && (smOn || !reverse) {
			// Traffic went on into the silent link for a while. The
			// clock moves once the sender has read all that came
			// before the silence: a read after the move would be life
			// at the new time, and rightly no probe would follow in
			// that interval.
			heard.upTo(t, p.Forwarded(toSender))
			detect(t, clk, probed, downs)
		}
		take(false)
	}
	done := func() bool {
		if smOn {
			return len(r.delivered)+len(r.bounced) >= n
		}
		return len(log.snapshot())+len(r.bounced) >= n
	}
	for !done() {
		take(true)
	}
	r.settle(t, a, b, from, log, take)
	return r
}

// detect moves a's clock until its half-open link is declared dead, and
// checks that it takes at most two keepalive intervals: one to the probe,
// one more without an answer.
func detect(t *testing.T, clk *fakeClock, probed <-chan struct{}, downs <-chan Event) {
	t.Helper()
	for step := 1; ; step++ {
		clk.Advance(proxyKeepAlive)
		select {
		case <-probed:
			if step >= 2 {
				t.Fatalf("probed again %d intervals after the link went silent", step)
			}
			continue
		case e := <-downs:
			if !errors.Is(e.Err, ErrKeepAlive) {
				t.Fatalf("link down for %v, want ErrKeepAlive", e.Err)
			}
			t.Logf("half-open link declared dead after %d × KeepAlive", step)
			if step > 2 {
				t.Errorf("a half-open link found after %d × KeepAlive, not within 2", step)
			}
			return
		case <-time.After(wait):
			t.Fatalf("nothing %d intervals after the link went silent", step)
		}
	}
}

// heardBytes counts the bytes a sender read through the proxy, for
// runProxyFault's wait before detect.
type heardBytes struct {
	n    atomic.Int64
	more chan struct{} // a read happened (one pending at most)
}

// upTo waits until n bytes were read.
func (h *heardBytes) upTo(t *testing.T, n int64) {
	t.Helper()
	for h.n.Load() < n {
		select {
		case <-h.more:
		case <-time.After(wait):
			t.Fatalf("the sender read %d of the %d bytes the proxy forwarded to it", h.n.Load(), n)
		}
	}
}

// heardConn counts what is read from it into h. It keeps no bytes of its
// own, and offers its socket, so that parked readers wait as usual.
type heardConn struct {
	net.Conn
	h *heardBytes
}

func (c *heardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.h.n.Add(int64(n))
		select {
		case c.h.more <- struct{}{}:
		default:
		}
	}
	return n, err
}

func (c *heardConn) SyscallConn() (syscall.RawConn, error) { return syscallConn(c.Conn) }

// heardListener counts what is read from the connections it accepts.
type heardListener struct {
	net.Listener
	h *heardBytes
}

func (l *heardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &heardConn{Conn: c, h: l.h}, nil
}
