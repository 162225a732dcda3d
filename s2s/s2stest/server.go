package s2stest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/policy"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// TB is the part of testing.TB that a Server uses. *testing.T, *testing.B and
// *testing.F satisfy it; testing.TB itself cannot be implemented outside the
// testing package, which is why the stub asks for this smaller interface.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// CloseTimeout bounds the graceful part of Close: how long the stub lets its
// queues drain and its streams close before it closes them by force.
const CloseTimeout = 10 * time.Second

// testCA issues every certificate of every stub in the process, so that one
// pool (RootCAs) trusts all stubs and all hosts' certificates.
var testCA = sync.OnceValues(func() (*testcert.CA, error) {
	return testcert.NewCA("s2stest CA")
})

// Server is a remote XMPP domain on loopback: its own s2s.Manager, listening on
// 127.0.0.1, recording what it receives. Create one with NewServer. Its
// methods are safe for concurrent use.
type Server struct {
	t      TB
	domain string
	m      *s2s.Manager
	ln     *handoff
	addr   netip.AddrPort
	leaf   *testcert.Leaf
	keys   dialback.KeySource

	dialback atomic.Int32 // a Dialback
	stall    atomic.Bool

	mu        sync.Mutex
	peers     map[string]netip.AddrPort
	conns     map[*conn]struct{}
	dropAt    time.Time // connections of links authenticated before it were dropped
	dropAfter int       // stanzas still to arrive before the armed drop; 0 when unarmed
	closed    bool

	stanzas record[s2s.Stanza]
	bounces record[s2s.Bounce]
	events  record[s2s.Event]

	ctx       context.Context // ends when Close begins; ping replies use it
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the accept loop, Serve and ping replies
	closeOnce sync.Once
}

// Option configures a Server at NewServer.
type Option func(*options)

type options struct {
	s2s      config.S2S
	peers    map[string]netip.AddrPort
	logger   *slog.Logger
	external bool
}

// WithStartTLS sets the stub's use_starttls option: "false" (the default),
// "optional", "required" or "required_trusted".
func WithStartTLS(mode string) Option {
	return func(o *options) { o.s2s.UseStartTLS = mode }
}

// WithS2S lets f change any of the stub's [s2s] options, which start as
// config.Default(). The stub presents its own certificate, so certfile needs
// no value; entries of address are added to the stub's peers.
func WithS2S(f func(*config.S2S)) Option {
	return func(o *options) { f(&o.s2s) }
}

// WithPeer tells the stub where the host's domain listens, as AddPeer does.
func WithPeer(domain string, addr netip.AddrPort) Option {
	return func(o *options) { o.peers[domain] = addr }
}

// WithSASLExternal lets the stub authenticate with SASL EXTERNAL (XEP-0178)
// in both directions when the certificates allow it, as a Manager does by
// default. Without it the stub authenticates with dialback only, so that
// SetDialback's misbehaviours decide every link.
func WithSASLExternal() Option {
	return func(o *options) { o.external = true }
}

// WithLogger gives the stub's Manager a logger; by default it logs nothing,
// so that the host's test output stays its own.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// NewServer starts a stub for domainName on a loopback port and registers its
// Close with t.Cleanup. It calls t.Fatalf when the stub cannot start: a name
// that is not a domain, options the Manager rejects, no loopback port (and
// returns nil, should Fatalf return).
func NewServer(t TB, domainName string, opts ...Option) *Server {
	t.Helper()
	d, err := domain.Normalize(domainName)
	if err != nil {
		t.Fatalf("s2stest: %v", err)
		return nil
	}
	o := options{s2s: config.Default(), peers: make(map[string]netip.AddrPort)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	ca, err := testCA()
	if err != nil {
		t.Fatalf("s2stest: test CA: %v", err)
		return nil
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{d}})
	if err != nil {
		t.Fatalf("s2stest: certificate for %s: %v", d, err)
		return nil
	}
	s := &Server{
		t:      t,
		domain: d,
		leaf:   leaf,
		keys:   dialback.Secret(o.s2s.Shared),
		peers:  make(map[string]netip.AddrPort),
		conns:  make(map[*conn]struct{}),
	}
	s.stanzas.init()
	s.bounces.init()
	s.events.init()
	for _, a := range o.s2s.Address {
		port := a.Port
		if port == 0 {
			port = o.s2s.Outgoing.Port
		}
		s.AddPeer(a.Host, netip.AddrPortFrom(a.IP, uint16(port)))
	}
	for h, a := range o.peers {
		s.AddPeer(h, a)
	}
	rules, err := policy.RulesFromConfig(o.s2s)
	var table *policy.Table
	if err == nil {
		table, err = policy.New(rules)
	}
	if err != nil {
		t.Fatalf("s2stest: %v", err)
		return nil
	}
	m, err := s2s.New(s2s.Config{
		S2S:     o.s2s,
		IsLocal: func(x string) bool { return x == d },
		// Stanzas are recorded from the StanzaIn event instead, which comes
		// first on the same goroutine and says which link carried the
		// stanza: that is what lets a drop discard the stanzas of the links
		// it killed (see observe).
		Deliver:  func(s2s.Stanza) {},
		Bounce:   s.bounces.add,
		Observer: s.observe,
		Logger:   o.logger,
		Resolver: peerResolver{s},
		Policy:   policy.Func(s.decide(table)),

		DisableSASLExternal: !o.external,
		DialContext:         s.dial,
		RootCAs:             ca.Pool(),
		Certificate:         starttls.StaticCert(leaf.TLS),
		Keys:                keySource{s},
	})
	if err != nil {
		t.Fatalf("s2stest: %v", err)
		return nil
	}
	s.m = m
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s2stest: %v", err)
		return nil
	}
	s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	s.ln = newHandoff(ln)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.acceptLoop(ln)
	}()
	go func() {
		defer s.wg.Done()
		m.Serve(s.ln)
	}()
	t.Cleanup(s.Close)
	return s
}

// Domain returns the stub's domain, normalised (a lower-case A-label).
func (s *Server) Domain() string { return s.domain }

// Addr returns the loopback address the stub listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Address returns the address override that sends the host's Manager to the
// stub: append it to the host's config.S2S.Address.
func (s *Server) Address() config.Address {
	return config.Address{Host: s.domain, IP: s.addr.Addr(), Port: int(s.addr.Port())}
}

// RootCAs returns a new pool holding the test CA that issued the stub's
// certificate and those of IssueCertificate: the host's s2s.Config.RootCAs for
// use_starttls = "required_trusted".
func (s *Server) RootCAs() *x509.CertPool {
	ca, _ := testCA() // NewServer made sure it exists
	return ca.Pool()
}

// Certificate returns the certificate the stub presents, issued for its
// domain by the test CA.
func (s *Server) Certificate() tls.Certificate { return s.leaf.TLS }

// IssueCertificate returns a certificate and key for the host's domains,
// issued by the test CA, which the stub trusts: give it to the host's
// Manager with starttls.StaticCert. It calls t.Fatalf when it cannot.
func (s *Server) IssueCertificate(domains ...string) tls.Certificate {
	s.t.Helper()
	ca, _ := testCA()
	leaf, err := ca.Leaf(testcert.Options{DNSNames: domains})
	if err != nil {
		s.t.Fatalf("s2stest: certificate for %v: %v", domains, err)
	}
	return leaf.TLS
}

// Manager returns the stub's own Manager, for its Links or Reload. Its
// callbacks belong to the stub.
func (s *Server) Manager() *s2s.Manager { return s.m }

// Links returns the stub's live links, as its Manager's Links does.
func (s *Server) Links() []s2s.LinkInfo { return s.m.Links() }

// Send sends a stanza from the stub's domain to the host. It returns an error
// wrapping s2s.ErrNotStanza for bytes that are not a stanza; a stanza that
// cannot be delivered is recorded as a bounce (Bounces, NextBounce).
func (s *Server) Send(ctx context.Context, raw []byte) error {
	return s.m.Send(ctx, raw)
}

// Received returns every stanza the host delivered to the stub so far, in the
// order they arrived, pings included.
func (s *Server) Received() []s2s.Stanza { return s.stanzas.all() }

// Next returns the first received stanza that Next has not yet returned,
// waiting for it until ctx ends. Stanzas come in arrival order.
func (s *Server) Next(ctx context.Context) (s2s.Stanza, error) { return s.stanzas.next(ctx) }

// Bounces returns every bounce of the stub's own stanzas so far.
func (s *Server) Bounces() []s2s.Bounce { return s.bounces.all() }

// NextBounce returns the first bounce that NextBounce has not yet returned,
// waiting for it until ctx ends.
func (s *Server) NextBounce(ctx context.Context) (s2s.Bounce, error) { return s.bounces.next(ctx) }

// Events returns the stub's link events so far, in order: s2s.LinkUp,
// s2s.LinkDown, s2s.AuthFailed and s2s.LinkFailed, as its Manager reported
// them.
func (s *Server) Events() []s2s.Event { return s.events.all() }

// NextEvent returns the first link event that NextEvent has not yet returned,
// waiting for it until ctx ends. A test that must know the host's link is up
// (not merely that a stanza went through) waits here for an s2s.LinkUp.
func (s *Server) NextEvent(ctx context.Context) (s2s.Event, error) { return s.events.next(ctx) }

// Close shuts the stub down: connections held by SetStall are closed, then the
// Manager shuts down gracefully (streams closed with </stream:stream>), by
// force after CloseTimeout. It waits for every goroutine of the stub. Close is
// registered with t.Cleanup by NewServer; calling it sooner tests a remote
// domain that went away. Later calls do nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		var held []*conn
		for c := range s.conns {
			if c.held {
				held = append(held, c)
			}
		}
		s.mu.Unlock()
		for _, c := range held {
			c.Close()
		}
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
		defer cancel()
		if err := s.m.Shutdown(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				s.t.Logf("s2stest: %s: closed by force after %s", s.domain, CloseTimeout)
			} else {
				s.t.Errorf("s2stest: %s: shutdown: %v", s.domain, err)
			}
		}
		s.ln.Close()
		s.wg.Wait()
	})
}

// observe records what arrived, answers pings and runs DropAfter. It runs on
// the Manager's goroutines, so it only records and starts work elsewhere.
func (s *Server) observe(e s2s.Event) {
	switch e.Kind {
	case s2s.LinkUp, s2s.LinkDown, s2s.AuthFailed, s2s.LinkFailed:
		s.events.add(e)
		return
	case s2s.StanzaIn:
	default:
		return
	}
	s.mu.Lock()
	// A link authenticated before the last drop lives on a connection that
	// the drop closed; the stanzas its reader had buffered are lost with
	// it, as they would be with a crashed server. A zero Since means the
	// Manager did not know the link yet and is taken as a live one.
	if !s.dropAt.IsZero() && !e.Link.Since.IsZero() && e.Link.Since.Before(s.dropAt) {
		s.mu.Unlock()
		return
	}
	s.stanzas.add(e.Stanza)
	drop := false
	if s.dropAfter > 0 {
		s.dropAfter--
		drop = s.dropAfter == 0
	}
	closed := s.closed
	s.mu.Unlock()
	if drop {
		s.Drop()
	}
	if reply, ok := pingReply(e.Stanza); ok && !closed {
		s.wg.Go(func() { s.m.Send(s.ctx, reply) })
	}
}
