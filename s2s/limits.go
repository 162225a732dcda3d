package s2s

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// Defaults of the limits in Config. They are far above what legitimate
// federation traffic reaches and low enough that one peer cannot exhaust
// the host.
const (
	// DefaultMaxDepth is the nesting of real payloads (a handful of
	// levels) with a wide margin.
	DefaultMaxDepth = 64
	// DefaultMaxIncoming keeps a listener well inside a typical file
	// descriptor limit of 65536.
	DefaultMaxIncoming = 10000
	// DefaultMaxPerAddress is per address and domain pair (addrKey): a
	// peer needs one stream per pair, two while it verifies or
	// reconnects, so this leaves a wide margin; before their headers
	// arrive a peer's streams count per address alone, and a burst of this
	// many connections from one address, none of them yet past its
	// header, is what it takes to be refused.
	DefaultMaxPerAddress = 100
	// DefaultMaxDialbackPerStream allows generous piggybacking.
	DefaultMaxDialbackPerStream = 256
)

// nsStreamLimits is XEP-0478's namespace.
const nsStreamLimits = "urn:xmpp:stream-limits:0"

// setLimitDefaults fills in the limits left at zero.
func (c *Config) setLimitDefaults() {
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.MaxIncoming == 0 {
		c.MaxIncoming = DefaultMaxIncoming
	}
	if c.MaxPerAddress == 0 {
		c.MaxPerAddress = DefaultMaxPerAddress
	}
	if c.MaxDialbackPerStream <= 0 {
		c.MaxDialbackPerStream = DefaultMaxDialbackPerStream
	}
	if c.MaxVerifications == 0 {
		c.MaxVerifications = DefaultMaxVerifications
	}
	if c.MaxVerificationsPerDomain == 0 {
		c.MaxVerificationsPerDomain = DefaultMaxVerificationsPerDomain
	}
	if c.DialbackFailureTTL == 0 {
		c.DialbackFailureTTL = DefaultDialbackFailureTTL
	}
}

// inLimits are the reader limits of an incoming stream: max_stanza_size as
// the settings in force when the stream (re)started say, so that Reload
// applies to new streams.
func (m *Manager) inLimits(st *settings) wire.Limits {
	return wire.Limits{MaxElementSize: st.s2s.MaxStanzaSize, MaxDepth: m.cfg.MaxDepth}
}

// limitsEntry is the XEP-0478 entry: the receiving side lists our
// limits; the initiating side keeps the peer's max-bytes, over which a
// stanza is bounced alone instead of written (peerlimits.go).
var limitsEntry = feature{
	id:        featLimits,
	name:      xml.Name{Space: nsStreamLimits, Local: "limits"},
	list:      func(s *inStream, st *settings) []byte { return s.m.limitsXML(st) },
	negotiate: (*outStream).readLimits,
}

// limitsXML advertises our limits to the peer (XEP-0478), so that a
// well-behaved sender does not try a stanza we would refuse, and knows how
// long an idle stream stays open. nil when there is nothing to say.
func (m *Manager) limitsXML(st *settings) []byte {
	max := st.s2s.MaxStanzaSize
	idle := m.cfg.IdleTimeout
	if max <= 0 && idle <= 0 {
		return nil
	}
	b := []byte("<limits xmlns='" + nsStreamLimits + "'>")
	if max > 0 {
		b = append(b, "<max-bytes>"...)
		b = strconv.AppendInt(b, max, 10)
		b = append(b, "</max-bytes>"...)
	}
	if idle > 0 {
		// Whole seconds, rounded down: a peer that keeps to it is never
		// closed for idleness.
		b = append(b, "<idle-seconds>"...)
		b = strconv.AppendInt(b, int64(max1(idle/time.Second)), 10)
		b = append(b, "</idle-seconds>"...)
	}
	return append(b, "</limits>"...)
}

func max1(d time.Duration) time.Duration { return max(d, 1) }

// limitListener bounds the connections a listener holds at once.
func (m *Manager) limitListener(ln net.Listener) net.Listener {
	if m.cfg.MaxIncoming <= 0 {
		return ln
	}
	// The limit goes under ServeTLS's and ServeMixed's marking, whose
	// connection type the stream goroutine looks for.
	if ml, ok := ln.(*markListener); ok {
		return &markListener{Listener: newBoundListener(ml.Listener, m.cfg.MaxIncoming), mode: ml.mode}
	}
	return newBoundListener(ln, m.cfg.MaxIncoming)
}

// boundListener is golang.org/x/net/netutil's LimitListener with a
// connection that offers its socket (SyscallConn), which a parked reader
// waits on (park.go): netutil's hides it. Accept waits while n
// connections are open; Close ends that wait.
type boundListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newBoundListener(ln net.Listener, n int) *boundListener {
	return &boundListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *boundListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		// Closed: the listener's own Accept says so; a listener that
		// hands out a connection anyway does not get it past the bound.
		c, err := l.Listener.Accept()
		if err == nil {
			c.Close()
			err = net.ErrClosed
		}
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &boundConn{Conn: c, sem: l.sem}, nil
}

func (l *boundListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// boundConn gives its place back once, at its first Close.
type boundConn struct {
	net.Conn
	sem  chan struct{}
	once sync.Once
}

func (c *boundConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.sem })
	return err
}

// SyscallConn is the accepted connection's, if it has one.
func (c *boundConn) SyscallConn() (syscall.RawConn, error) { return syscallConn(c.Conn) }

// addrKey is what MaxPerAddress counts streams by: the remote address and
// the domain pair of the stream header ('from', 'to'), empty until the
// header arrived. A peer opens one stream per domain pair (and briefly a
// second one to verify a key or while it reconnects), so a server hosting
// many domains behind one address is never near the bound, while one that
// holds open streams without ever sending a header, or many for one pair,
// is.
type addrKey struct {
	ip       netip.Addr
	from, to string
}

// addrCount counts the incoming streams per addrKey. The zero value is
// ready; it is safe for concurrent use.
type addrCount struct {
	mu sync.Mutex
	n  map[addrKey]int
}

// take counts a stream under k and reports whether it is within limit
// (limit < 0: no bound). A false take holds nothing to give back.
func (c *addrCount) take(k addrKey, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit >= 0 && c.n[k] >= limit {
		return false
	}
	if c.n == nil {
		c.n = make(map[addrKey]int)
	}
	c.n[k]++
	return true
}

// give forgets a stream that take counted.
func (c *addrCount) give(k addrKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] <= 1 {
		delete(c.n, k)
		return
	}
	c.n[k]--
}

// remoteIP is what MaxPerAddress counts a connection under: its IPv4
// address, or the /64 network of its IPv6 address (one host is usually
// given a whole /64, so counting each address alone would let it open a
// stream from each); the zero Addr for connections that are not TCP
// (net.Pipe in tests, a proxy), which are counted together.
func remoteIP(conn net.Conn) netip.Addr {
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	a := ta.AddrPort().Addr().Unmap()
	if a.Is6() {
		return netip.PrefixFrom(a.WithZone(""), 64).Masked().Addr()
	}
	return a
}

// addrString writes what remoteIP returned for a person.
func addrString(a netip.Addr) string {
	if a.Is6() {
		return a.String() + "/64"
	}
	return a.String()
}

// admit counts a new incoming stream against MaxPerAddress, under its
// address alone until its header arrives (recount). When over, it answers
// with our header and policy-violation, without reading the peer's header
// (RFC 6120 §4.9.1.1 allows the error before it), and returns an error.
func (s *inStream) admit() error {
	m := s.m
	s.ip = remoteIP(s.conn)
	k := addrKey{ip: s.ip}
	if m.addrs.take(k, m.cfg.MaxPerAddress) {
		s.counted, s.key = true, k
		return nil
	}
	s.write(headerBytes(wire.Header{ID: newStreamID()}))
	return s.fail(stream.PolicyViolation, fmt.Sprintf("too many streams from %s without a header", addrString(s.ip)))
}

// recount moves the stream's count to the domain pair its header names
// (s.peer and s.local, set by checkHeader), once per header that changes
// it. Over MaxPerAddress it answers h with policy-violation.
func (s *inStream) recount(h wire.Header) error {
	m := s.m
	k := addrKey{ip: s.ip, from: s.peer, to: s.local}
	if !s.counted || k == s.key {
		return nil
	}
	if !m.addrs.take(k, m.cfg.MaxPerAddress) {
		s.replyHeader(h)
		return s.fail(stream.PolicyViolation, fmt.Sprintf("too many streams from %s for %s to %s",
			addrString(s.ip), domain.Clip(s.peer), s.local))
	}
	m.addrs.give(s.key)
	s.key = k
	return nil
}

// release gives back what admit and recount counted.
func (s *inStream) release() {
	if s.counted {
		s.m.addrs.give(s.key)
	}
}

// countDialback counts a <db:result> and reports whether the stream is
// still within MaxDialbackPerStream. Every request counts, repeats too: a
// repeat costs us an answer, and one of a pending request a waiter.
func (s *inStream) countDialback() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialbacks >= s.m.cfg.MaxDialbackPerStream {
		return false
	}
	s.dialbacks++
	return true
}
