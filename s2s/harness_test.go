package s2s

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// testCA is shared by the tests of this package: certificates are cheap, the
// CA is made once.
var testCA = sync.OnceValue(func() *testcert.CA {
	ca, err := testcert.NewCA("s2s test CA")
	if err != nil {
		panic(err)
	}
	return ca
})

// node is one Manager serving one or more local domains on a loopback port,
// recording what it delivers and bounces.
type node struct {
	t       *testing.T
	m       *Manager
	ln      net.Listener
	addr    netip.AddrPort
	domains map[string]bool

	delivered chan Stanza
	bounced   chan Bounce
	events    chan Event
}

type nodeOpt func(*Config)

func withMode(mode string) nodeOpt {
	return func(c *Config) { c.S2S.UseStartTLS = mode }
}

func withS2S(f func(*config.S2S)) nodeOpt {
	return func(c *Config) { f(&c.S2S) }
}

func withConfig(f func(*Config)) nodeOpt { return f }

// listen reserves a loopback port for a node, so that peers can be told its
// address before it starts.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveEach returns a loopback listener that runs serve on a goroutine of
// its own for each connection it accepts, and closes the connection when
// serve returns; the listener closes when the test ends.
func serveEach(tb testing.TB, serve func(net.Conn)) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return ln
}

func addrOf(ln net.Listener) netip.AddrPort {
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// newNode starts a Manager for domains on ln. peers maps remote domains to
// the loopback addresses they listen on (address overrides).
func newNode(t *testing.T, ln net.Listener, domains []string, peers map[string]netip.AddrPort, opts ...nodeOpt) *node {
	t.Helper()
	n := &node{
		t: t, ln: ln, addr: addrOf(ln), domains: map[string]bool{},
		delivered: make(chan Stanza, 10000),
		bounced:   make(chan Bounce, 10000),
		events:    make(chan Event, 10000),
	}
	for _, d := range domains {
		n.domains[d] = true
	}
	s := config.Default()
	for d, a := range peers {
		s.Address = append(s.Address, config.Address{Host: d, IP: a.Addr(), Port: int(a.Port())})
	}
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: domains})
	if err != nil {
		t.Fatal(err)
	}
	c := Config{
		S2S:         s,
		IsLocal:     func(d string) bool { return n.domains[d] },
		Deliver:     func(s Stanza) { n.delivered <- s },
		Bounce:      func(b Bounce) { n.bounced <- b },
		RootCAs:     testCA().Pool(),
		Logger:      testLogger(t),
		Certificate: starttls.StaticCert(leaf.TLS),
		Observer: func(e Event) {
			select {
			case n.events <- e:
			default:
			}
		},
	}
	// Most tests here are about dialback, over TLS too; SASL EXTERNAL (on
	// by default) would authenticate every TLS link with these
	// certificates. The EXTERNAL tests turn it back on with withExternal.
	c.DisableSASLExternal = true
	for _, o := range opts {
		o(&c)
	}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	go m.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return n
}

func (n *node) send(raw string) {
	n.t.Helper()
	if err := n.m.Send(context.Background(), []byte(raw)); err != nil {
		n.t.Fatalf("Send(%s): %v", raw, err)
	}
}

// wait bounds every wait in these tests: long enough for a loaded machine,
// short enough to fail a hung test.
const wait = 20 * time.Second

func (n *node) nextDelivered() Stanza {
	n.t.Helper()
	select {
	case s := <-n.delivered:
		return s
	case b := <-n.bounced:
		n.t.Fatalf("bounced instead of delivered: %s: %s", b.Condition, b.Text)
	case <-time.After(wait):
		n.t.Fatal("nothing delivered")
	}
	return Stanza{}
}

func (n *node) nextBounce() Bounce {
	n.t.Helper()
	select {
	case b := <-n.bounced:
		return b
	case <-time.After(wait):
		n.t.Fatal("nothing bounced")
	}
	return Bounce{}
}

// pairNodes starts a.test and b.test, each knowing the other's address.
func pairNodes(t *testing.T, aOpts, bOpts []nodeOpt) (a, b *node) {
	t.Helper()
	la, lb := listen(t), listen(t)
	a = newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)}, aOpts...)
	b = newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, bOpts...)
	return a, b
}

// testLogger sends the Manager's logs to the test's log, so they show when
// a test fails or with -v, and nowhere once the test has ended.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// writeLog records which stanzas a node wrote to a stream (its StanzaOut
// events), so that a test can account for every stanza it gave to Send:
// written or bounced, exactly once.
type writeLog struct {
	mu       sync.Mutex
	written  map[string]int
	progress chan struct{}
}

func newWriteLog() *writeLog {
	return &writeLog{written: map[string]int{}, progress: make(chan struct{}, 1)}
}

// observe is the node's Config.Observer.
func (w *writeLog) observe(e Event) {
	if e.Kind != StanzaOut {
		return
	}
	w.mu.Lock()
	w.written[e.Stanza.ID]++
	w.mu.Unlock()
	select {
	case w.progress <- struct{}{}:
	default:
	}
}

// snapshot returns how often each stanza id was written so far.
func (w *writeLog) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.written)
}

// await reads n's bounces until each of total stanzas was written or
// bounced, and returns how often each id was bounced; onBounce, when set,
// sees every bounce.
func (w *writeLog) await(t *testing.T, n *node, total int, timeout time.Duration, onBounce func(Bounce)) map[string]int {
	t.Helper()
	bounced := map[string]int{}
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		written := len(w.written)
		w.mu.Unlock()
		if len(bounced)+written >= total {
			return bounced
		}
		select {
		case bo := <-n.bounced:
			bounced[bo.Stanza.ID]++
			if onBounce != nil {
				onBounce(bo)
			}
		case <-w.progress:
		case <-deadline:
			t.Fatalf("accounted %d written + %d bounced of %d", written, len(bounced), total)
		}
	}
}

// openListener counts the connections it accepted, those still open and
// the most open at once; accepts and closed, when set, are told of each
// accepted and each closed connection. With gate set, Accept returns a
// connection (and its server starts reading it) only once gate is closed,
// after telling accepts.
type openListener struct {
	net.Listener
	mu       sync.Mutex
	accepted int
	open     int
	maxOpen  int
	accepts  chan struct{}
	gate     chan struct{}
	closed   chan struct{}
}

func newOpenListener(t *testing.T) *openListener {
	return &openListener{Listener: listen(t), closed: make(chan struct{}, 100)}
}

func (l *openListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.accepted++
	l.open++
	l.maxOpen = max(l.maxOpen, l.open)
	l.mu.Unlock()
	if l.accepts != nil {
		l.accepts <- struct{}{}
	}
	if l.gate != nil {
		<-l.gate
	}
	return &closeConn{Conn: c, l: l}, nil
}

func (l *openListener) counts() (accepted, open int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted, l.open
}

// waitOpen waits until at most n accepted connections are open.
func (l *openListener) waitOpen(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(wait)
	for {
		if _, open := l.counts(); open <= n {
			return
		}
		select {
		case <-l.closed:
		case <-timeout:
			_, open := l.counts()
			t.Fatalf("%d connections still open, want at most %d", open, n)
		}
	}
}

type closeConn struct {
	net.Conn
	l    *openListener
	once sync.Once
}

func (c *closeConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
		if c.l.closed != nil {
			c.l.closed <- struct{}{}
		}
	})
	return c.Conn.Close()
}
