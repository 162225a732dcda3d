package s2s

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// thirdParty is a server that a peer names as the authoritative server of
// a domain, to make us connect to it: it counts the connections it gets,
// and either holds them open without a word (stall) or closes them at once.
type thirdParty struct {
	ln       net.Listener
	n        atomic.Int64
	accepted chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
}

func newThirdParty(t *testing.T, stall bool) *thirdParty {
	t.Helper()
	tp := &thirdParty{ln: listen(t), accepted: make(chan struct{}, 10000)}
	t.Cleanup(func() {
		tp.ln.Close()
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, c := range tp.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := tp.ln.Accept()
			if err != nil {
				return
			}
			tp.n.Add(1)
			if stall {
				tp.mu.Lock()
				tp.conns = append(tp.conns, c)
				tp.mu.Unlock()
			} else {
				c.Close()
			}
			tp.accepted <- struct{}{}
		}
	}()
	return tp
}

func (tp *thirdParty) waitAccepted(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-tp.accepted:
		case <-time.After(wait):
			t.Fatalf("the third party got %d connections, want %d", tp.n.Load(), n)
		}
	}
}

// targetOf starts b.test, which finds each of domains at the third party.
func targetOf(t *testing.T, tp *thirdParty, domains []string, opts ...nodeOpt) *node {
	t.Helper()
	peers := map[string]netip.AddrPort{}
	for _, d := range domains {
		peers[d] = addrOf(tp.ln)
	}
	return newNode(t, listen(t), []string{"b.test"}, peers, opts...)
}

func dbResult(from, to, key string) string {
	return fmt.Sprintf("<db:result from='%s' to='%s'>%s</db:result>", from, to, key)
}

// nextAnswer reads the next <db:result> answer.
func (p *rawPeer) nextAnswer() dialback.Result {
	p.t.Helper()
	for {
		e, err := p.r.Next()
		if err != nil {
			p.t.Fatalf("waiting for an answer: %v", err)
		}
		el, err := decodeDialback(e)
		if err != nil {
			p.t.Fatal(err)
		}
		if r, ok := el.(dialback.Result); ok {
			return r
		}
	}
}

// TestDialbackAmplification is the reflection attack: 2,000 identical
// <db:result> naming a third party, on one unauthenticated stream. One
// verification runs; the repeats wait for it and count against
// MaxDialbackPerStream (default), whose end closes the stream: the third
// party sees one connection, not 2,000.
func TestDialbackAmplification(t *testing.T) {
	tp := newThirdParty(t, true)
	b := targetOf(t, tp, []string{"third.test"})
	p := dialRaw(t, b, "third.test", "b.test")
	req := dbResult("third.test", "b.test", strings.Repeat("0", 64))
	p.write(req)
	tp.waitAccepted(t, 1)
	go func() {
		// b stops reading at the limit; what it did not read is lost.
		p.conn.Write([]byte(strings.Repeat(req, 1999)))
	}()
	if cond := p.streamError(); cond != "policy-violation" {
		t.Fatalf("stream error %q, want policy-violation", cond)
	}
	p.expectClosed()
	if n := tp.n.Load(); n != 1 {
		t.Fatalf("%d connections to the third party, want 1", n)
	}
}

// TestDialbackRepeatAnswered: a request repeated while its verification
// runs is answered, once per request, when that verification ends.
func TestDialbackRepeatAnswered(t *testing.T) {
	tp := newThirdParty(t, false)
	b := targetOf(t, tp, []string{"third.test"})
	p := dialRaw(t, b, "third.test", "b.test")
	const n = 5
	p.write(strings.Repeat(dbResult("third.test", "b.test", "k"), n))
	for i := range n {
		if r := p.nextAnswer(); r.Type != dialback.Failed || r.From != "b.test" || r.To != "third.test" {
			t.Fatalf("answer %d: %+v", i, r)
		}
	}
	// Whether a repeat came while the verification ran or after it
	// failed, the third party was asked once.
	if got := tp.n.Load(); got != 1 {
		t.Fatalf("%d connections to the third party, want 1", got)
	}
}

// TestDialbackInFlightBounds: verifications in flight are bounded per remote
// domain and in all; a request over a bound is answered with
// resource-constraint (type wait) and opens no connection.
func TestDialbackInFlightBounds(t *testing.T) {
	for i, tc := range []struct {
		total, perDomain int
		domains          []string // the 'from' of each request, in order
	}{
		// Three keys for one pair, per-domain bound 2.
		{total: -1, perDomain: 2, domains: []string{"third.test", "third.test", "third.test"}},
		// Three domains, bound 2 in all.
		{total: 2, perDomain: -1, domains: []string{"t1.test", "t2.test", "t3.test"}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			tp := newThirdParty(t, true)
			b := targetOf(t, tp, []string{"third.test", "t1.test", "t2.test", "t3.test"}, withConfig(func(c *Config) {
				c.MaxVerifications = tc.total
				c.MaxVerificationsPerDomain = tc.perDomain
			}))
			p := dialRaw(t, b, "third.test", "b.test")
			last := len(tc.domains) - 1
			for j, d := range tc.domains[:last] {
				p.write(dbResult(d, "b.test", "key"+strconv.Itoa(j)))
			}
			tp.waitAccepted(t, last)
			p.write(dbResult(tc.domains[last], "b.test", "key-last"))
			r := p.nextAnswer()
			if r.Type != dialback.Failed || r.Err == nil || r.Err.Condition != stanza.ResourceConstraint || r.Err.Type != stanza.Wait || r.To != tc.domains[last] {
				t.Fatalf("answer %+v (error %+v), want resource-constraint for %s", r, r.Err, tc.domains[last])
			}
			// A second stream is bounded alike: the bounds are the
			// Manager's, not the stream's.
			q := dialRaw(t, b, "third.test", "b.test")
			q.write(dbResult(tc.domains[last], "b.test", "key-other"))
			if r := q.nextAnswer(); r.Err == nil || r.Err.Condition != stanza.ResourceConstraint {
				t.Fatalf("second stream: answer %+v", r)
			}
			if n := tp.n.Load(); n != int64(last) {
				t.Fatalf("%d connections to the third party, want %d", n, last)
			}
		})
	}
}

// TestDialbackFailureRemembered: after a verification failed, the pair is
// answered from memory for DialbackFailureTTL — on the same stream with a
// new key, and on a new stream from the same address — while another
// address is still verified, and once the time is over, so is this one.
func TestDialbackFailureRemembered(t *testing.T) {
	tp := newThirdParty(t, false)
	clk := newFakeClock()
	b := targetOf(t, tp, []string{"third.test"}, withConfig(func(c *Config) { c.clock = clk }))
	ask := func(p *rawPeer, key string) {
		t.Helper()
		p.write(dbResult("third.test", "b.test", key))
		if r := p.nextAnswer(); r.Type != dialback.Failed {
			t.Fatalf("answer %+v", r)
		}
	}
	p := dialRaw(t, b, "third.test", "b.test")
	ask(p, "k1")
	ask(p, "k2")
	ask(dialRaw(t, b, "third.test", "b.test"), "k3")
	if n := tp.n.Load(); n != 1 {
		t.Fatalf("%d connections to the third party, want 1", n)
	}
	ask(dialRawFrom(t, b, "127.0.0.2", "third.test", "b.test"), "k4")
	if n := tp.n.Load(); n != 2 {
		t.Fatalf("another address: %d connections to the third party, want 2", n)
	}
	clk.Advance(DefaultDialbackFailureTTL)
	ask(p, "k5")
	if n := tp.n.Load(); n != 3 {
		t.Fatalf("after the TTL: %d connections to the third party, want 3", n)
	}
}

// TestDialbackAfterForbidden: a peer authenticated for x.test keeps asking
// for victim.test with keys the authoritative server refuses. Each refusal
// is a forbidden answer that leaves the stream up; the repeats are answered
// from the remembered failure, so the authoritative server is asked once,
// not once per request.
func TestDialbackAfterForbidden(t *testing.T) {
	la := &countingListener{Listener: listen(t)}
	lb := listen(t)
	domains := []string{"x.test", "victim.test"}
	newNode(t, la, domains, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"x.test": addrOf(la), "victim.test": addrOf(la)})
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback x.test %q", typ)
	}
	before := la.n.Load()
	for i := range 20 {
		p.write(dbResult("victim.test", "b.test", "guess"+strconv.Itoa(i)))
		if r := p.nextAnswer(); r.Type != dialback.Failed || r.Err == nil || r.Err.Condition != stanza.Forbidden {
			t.Fatalf("answer %d: %+v (%+v), want forbidden", i, r, r.Err)
		}
	}
	if n := la.n.Load() - before; n != 1 {
		t.Fatalf("the authoritative server was asked over %d connections, want 1", n)
	}
}

// dialRawFrom is dialRaw from a chosen loopback address.
func dialRawFrom(t *testing.T, n *node, src, from, to string) *rawPeer {
	t.Helper()
	return dialRawWith(t, n, &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}, from, to)
}

// dialRawWith is dialRaw through d.
func dialRawWith(t *testing.T, n *node, d *net.Dialer, from, to string) *rawPeer {
	t.Helper()
	conn, err := d.Dial("tcp", n.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wait))
	p := &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.DefaultLimits)}
	p.write(headerString(from, to))
	h, err := p.r.ReadHeader()
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	p.id = h.ID
	if _, err := p.r.Next(); err != nil {
		t.Fatalf("features: %v", err)
	}
	return p
}

// logBuffer is a Logger that keeps every line, to check what reached it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) longestLine() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		n = max(n, len(line))
	}
	return n
}

// TestDialbackLongNames is the pinning attack: <db:result> and <db:verify>
// whose names are not domains — 200 KB long, 254 bytes, malformed — end
// the stream with improper-addressing at the first, before anything is
// counted, stored or verified; neither the logs nor the events carry the
// names whole.
func TestDialbackLongNames(t *testing.T) {
	long := strings.Repeat("a", 200<<10)
	for i, send := range []string{
		dbResult(long, "b.test", "k"),
		dbResult("x.test", long, "k"),
		dbResult(strings.Repeat("a.", 126)+"bc", "b.test", "k"),
		dbResult("x.test", "b..test", "k"),
		dbResult("a b.test", "b.test", "k"),
		"<db:verify from='" + long + "' to='b.test' id='i'>k</db:verify>",
		"<db:verify from='x.test' to='" + long + "' id='i'>k</db:verify>",
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			tp := newThirdParty(t, false)
			logs := &logBuffer{}
			var events []Event
			var mu sync.Mutex
			b := targetOf(t, tp, []string{"x.test"}, withConfig(func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.Observer = func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
			}))
			p := dialRaw(t, b, "x.test", "b.test")
			p.write(send)
			if cond := p.streamError(); cond != "improper-addressing" {
				t.Fatalf("stream error %q, want improper-addressing", cond)
			}
			p.expectClosed()
			if n := tp.n.Load(); n != 0 {
				t.Fatalf("%d connections to the third party", n)
			}
			b.m.Close() // the end-of-stream log line is written
			if n := logs.longestLine(); n > 1000 {
				t.Fatalf("a log line of %d bytes", n)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range events {
				if s := fmt.Sprintf("%+v", e); len(s) > 2000 {
					t.Fatalf("an event of %d bytes: %.200s…", len(s), s)
				}
			}
		})
	}
}
