package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// Domains of the library pair. The sending side serves any number of
// subdomains of senderZone, so that each new local domain is a new link to
// receiverDomain (links are per domain pair); its certificate names them all
// with one wildcard.
const (
	senderZone     = "a.bench"
	receiverDomain = "b.bench"
)

// senderDomain returns the i-th local domain of the sending side.
func senderDomain(i int) string { return "l" + strconv.Itoa(i) + "." + senderZone }

// libPair is two Managers on loopback: a sends, b receives and answers
// pings. What each side does with a delivered stanza is set per experiment.
type libPair struct {
	a, b   *s2s.Manager
	lnA    net.Listener
	lnB    net.Listener
	onA    atomic.Pointer[func(s2s.Stanza)]
	onB    atomic.Pointer[func(s2s.Stanza)]
	bounce atomic.Int64
	// lastBounce is the text of a recent bounce, so that a failed
	// experiment says why.
	lastBounce atomic.Pointer[string]
	// turnsA and turnsB count round trips on the connections each side
	// dials: a's links, b's dialback verification streams.
	turnsA, turnsB atomic.Int64
	// seenA is turnsA as b last read from a connection it accepted.
	seenA atomic.Int64
	// certA is the certificate a presents from now on (presentAs): a
	// new one makes a's next link a first contact, whose TLS session
	// nothing can resume.
	certA atomic.Pointer[tls.Certificate]
	// ca issued both sides' certificates; sharedA is a's dialback
	// secret, with which the host rows' load generator authenticates a
	// domain of a's zone to b (host.go).
	ca      *testcert.CA
	sharedA string
}

// newLibPair starts two Managers; tlsOn selects use_starttls required_trusted
// (TLS 1.3) or false.
func newLibPair(ca *testcert.CA, tlsOn bool) (*libPair, error) {
	p := &libPair{ca: ca}
	var err error
	if p.lnA, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if p.lnB, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		p.lnA.Close()
		return nil, err
	}
	mode := "false"
	if tlsOn {
		mode = "required_trusted"
	}
	leafA, err := ca.Leaf(testcert.Options{DNSNames: []string{"*." + senderZone}})
	if err != nil {
		return nil, err
	}
	leafB, err := ca.Leaf(testcert.Options{DNSNames: []string{receiverDomain}})
	if err != nil {
		return nil, err
	}
	isA := func(d string) bool { return strings.HasSuffix(d, "."+senderZone) }
	isB := func(d string) bool { return d == receiverDomain }
	p.presentAs(leafA)
	srcA := starttls.CertFunc(func() (*tls.Certificate, error) { return p.certA.Load(), nil })
	cfgA := p.config(ca, mode, srcA, isA, &p.onA, &p.turnsA)
	p.sharedA = string(cfgA.S2S.Shared)
	p.a, err = s2s.New(cfgA)
	if err != nil {
		p.close()
		return nil, err
	}
	p.b, err = s2s.New(p.config(ca, mode, starttls.StaticCert(leafB.TLS), isB, &p.onB, &p.turnsB))
	if err != nil {
		p.close()
		return nil, err
	}
	go p.a.Serve(p.lnA)
	go p.b.Serve(seenListener{Listener: p.lnB, p: p})
	return p, nil
}

// config builds one side's Config.
func (p *libPair) config(ca *testcert.CA, mode string, cert starttls.CertSource, local func(string) bool,
	on *atomic.Pointer[func(s2s.Stanza)], turns *atomic.Int64) s2s.Config {
	s := config.Default()
	s.UseStartTLS = mode
	return s2s.Config{
		S2S:     s,
		IsLocal: local,
		Deliver: func(st s2s.Stanza) {
			if h := on.Load(); h != nil {
				(*h)(st)
			}
		},
		Bounce: func(b s2s.Bounce) {
			p.bounce.Add(1)
			p.lastBounce.Store(&b.Text)
		},
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     ca.Pool(),
		Certificate: cert,
		Resolver:    p,
		// The idle-memory experiment holds thousands of links; the
		// throughput ones keep a window of thousands of stanzas queued.
		QueueLength: 1 << 16,
		// Every link comes from 127.0.0.1: the per-address bound, meant
		// for one hostile host, would refuse all but the first hundred.
		MaxPerAddress: -1,
		MaxIncoming:   -1,
		// A link here is a connection: the new-link and idle experiments
		// time and weigh one per sending domain against a raw
		// connection each. With piggybacking, the sending domains after
		// the first ride the first one's stream (one dialback round trip
		// and the verification stream instead of TCP, TLS and
		// authentication), which is another measurement (BENCHMARKS.md,
		// issue 16's n x m section).
		DisablePiggyback: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &turnConn{Conn: c, turns: turns}, nil
		},
	}
}

// presentAs makes a present leaf's certificate on its links from now on.
func (p *libPair) presentAs(leaf *testcert.Leaf) {
	c := leaf.TLS
	p.certA.Store(&c)
}

// resumed reports whether a's link from local domain i to the receiver
// resumed a TLS session.
func (p *libPair) resumed(i int) (bool, error) {
	for _, l := range p.a.Links() {
		if l.Direction == s2s.Outgoing && l.Local == senderDomain(i) {
			return l.TLSResumed, nil
		}
	}
	return false, fmt.Errorf("bench: no link from %s", senderDomain(i))
}

// close shuts both Managers down.
func (p *libPair) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p.a != nil {
		p.a.Shutdown(ctx)
	}
	if p.b != nil {
		p.b.Shutdown(ctx)
	}
	if p.lnA != nil {
		p.lnA.Close()
	}
	if p.lnB != nil {
		p.lnB.Close()
	}
}

// handle sets what side a (toA) or b does with each delivered stanza.
func (p *libPair) handle(toA bool, f func(s2s.Stanza)) {
	if toA {
		p.onA.Store(&f)
	} else {
		p.onB.Store(&f)
	}
}

// checkBounces fails an experiment that lost stanzas.
func (p *libPair) checkBounces() error {
	if n := p.bounce.Swap(0); n > 0 {
		why := ""
		if t := p.lastBounce.Load(); t != nil {
			why = ": " + *t
		}
		return fmt.Errorf("bench: %d stanzas bounced%s", n, why)
	}
	return nil
}

// turnConn counts round trips: a write that follows a read, which
// followed a write, is one (we wrote, waited for the peer, and went on).
// Counted at the write rather than at the read, so that a read nothing
// waited for (the peer's <enabled/>, which comes after our pipelined
// <enable/> and the first stanza) is no round trip.
type turnConn struct {
	net.Conn
	turns *atomic.Int64

	mu    sync.Mutex
	wrote bool // a write was made
	heard bool // and a read since
}

// SyscallConn is the socket's: turnConn keeps no bytes of its own, so a
// Manager's parked reader may wait on the socket as it does on an
// unwrapped connection (s2s/park.go).
func (c *turnConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *turnConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.heard {
		c.turns.Add(1)
		c.heard = false
	}
	c.wrote = true
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *turnConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		if c.wrote {
			c.heard = true
		}
		c.mu.Unlock()
	}
	return n, err
}

// seenListener is b's listener: what b reads on the connections it accepts
// notes how many round trips a had made by then (seenA). The round trips a
// new link's first stanza waited for are a's as b read that stanza: a may
// make one more before b's host is given it (the <r/> it writes once it
// has read the <enabled/> that b wrote on reading <enable/> and the
// stanza), which the stanza did not wait for.
type seenListener struct {
	net.Listener
	p *libPair
}

func (l seenListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return seenConn{Conn: c, p: l.p}, nil
}

type seenConn struct {
	net.Conn
	p *libPair
}

// SyscallConn is the socket's, as for turnConn: seenConn keeps no bytes
// of its own, so a parked reader of b's may wait on the socket.
func (c seenConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c seenConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.p.seenA.Store(c.p.turnsA.Load())
	}
	return n, err
}

// Resolve routes the pair's domains to their listeners without DNS: b must
// reach every sending domain for dialback verification, a the receiver.
func (p *libPair) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	var ln net.Listener
	switch {
	case d == receiverDomain:
		ln = p.lnB
	case strings.HasSuffix(d, "."+senderZone):
		ln = p.lnA
	default:
		return nil, fmt.Errorf("bench: %s: %w", d, resolver.ErrNotFound)
	}
	return []resolver.Target{{Host: d, Addr: ln.Addr().(*net.TCPAddr).AddrPort()}}, nil
}
