package starttls

import (
	"bytes"
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TLS 1.3 session resumption for repeated links to one server.
//
// A resumed handshake skips both certificates, both CertificateVerify
// signatures and their checks, and keeps the key exchange (crypto/tls
// resumes with psk_dhe_ke only, so a leaked ticket key exposes no
// traffic). What it must not skip is our policy: crypto/tls calls
// VerifyConnection on resumed connections too, on both sides, with the
// peer's certificates restored from the session (see TestResumptionFacts),
// so required_trusted's name and validity checks run at the current Time
// on every link, resumed or not (the chain's signatures, verified by the
// session's first handshake under the same rules, are not checked again:
// see window). What this file adds is what crypto/tls cannot know:
//
//   - On resumption the client sends no certificate: the server sees the
//     one of the first handshake. crypto/tls keys its client cache by
//     server name only; ours adds the fingerprint of the certificate the
//     link would present, so a session is resumed only by a link that
//     would have presented that very certificate to that very domain,
//     whatever local domain it is for (the server then checks that
//     certificate against the stream's 'from', as after a full
//     handshake).
//   - Tickets are sealed with keys of the Config (shared by all its
//     streams, random, in memory only, rotated) and bound to the
//     certificate we presented: after a renewal, or under a Config with
//     other rules (a Reload; see ShareSessions), a ticket does not resume
//     and a full handshake runs.
//   - A session whose peer chain has a certificate past its NotAfter is
//     not offered or accepted: a full handshake fetches the peer's
//     current chain instead of failing the link on the old one.
//   - Only TLS 1.3 sessions resume (see above for why).

// DefaultSessionCacheSize is the number of outgoing sessions a Config keeps
// when Config.SessionCacheSize is 0: one per remote server domain (and
// certificate of ours), the least recently used dropped first.
const DefaultSessionCacheSize = 1024

// Ticket key rotation: a new key seals tickets every ticketRotation, and a
// key opens them for ticketLifetime, so a ticket resumes for 12 to 24
// hours after it was issued (crypto/tls itself allows 7 days). A ticket
// key can mint sessions that carry any certificate, so it is kept short
// lived and never leaves memory.
const (
	ticketRotation = 12 * time.Hour
	ticketLifetime = 24 * time.Hour
)

// bindingTag starts the entry that WrapSession appends to a session's
// Extra: the tag, the TLS version, the SHA-256 of the certificate chain we
// presented, the earliest NotAfter of the peer's chain (Unix seconds, 0
// for no certificate), and the window of the peer's chain as verified
// (zero when it was not: see window).
var bindingTag = []byte("xmpp-s2s-starttls/2")

const bindingLen = 19 + 2 + sha256.Size + 8 + 16 // len(bindingTag) + version + print + time + window

// window is when a verified chain is valid, in Unix seconds: from the
// latest NotBefore to the earliest NotAfter of its certificates, root
// included; the zero window is a chain never verified. A session carries
// the window of the chain its first handshake verified, so that a
// resumption under the same rules checks the chain's validity at the
// current time and the name, not its signatures again: crypto/tls does the
// same for sessions it verified itself (with InsecureSkipVerify it keeps
// no verified chains, so ours is kept here).
type window struct{ from, until int64 }

func windowOf(chain []*x509.Certificate) window {
	var w window
	for i, c := range chain {
		from, until := c.NotBefore.Unix(), c.NotAfter.Unix()
		if i == 0 || from > w.from {
			w.from = from
		}
		if i == 0 || until < w.until {
			w.until = until
		}
	}
	return w
}

// covers reports whether now is inside w, erring to the side of a full
// check within the second of either end.
func (w window) covers(now time.Time) bool {
	t := now.Unix()
	return w.until != 0 && t > w.from && t < w.until
}

// serverStream is what one incoming stream's handshake knows beyond its
// tls.Config: the certificate of ours it uses, and the window of the
// peer's chain as verified (by this handshake, or by the first handshake
// of the session it resumed). Written and read on the handshake's
// goroutine.
type serverStream struct {
	ours     *tls.Certificate
	verified window
}

// sessions is the resumption state of one Config, made on first use.
type sessions struct {
	now func() time.Time

	mu      sync.Mutex
	keys    []ticketKey // newest first
	sealer  *tls.Config // holds keys, for EncryptTicket and DecryptTicket
	rotated time.Time

	cache *sessionCache

	// own caches the fingerprint of the last certificate of ours seen,
	// since a CertSource hands out the same pointer until it changes.
	own atomic.Pointer[certPrint]
}

type ticketKey struct {
	key     [32]byte
	created time.Time
}

type certPrint struct {
	cert  *tls.Certificate
	chain [][]byte // cert.Certificate when it was hashed
	sum   [sha256.Size]byte
}

// same reports whether cert is the certificate p was made of: the same
// pointer holding the same DER buffers, so that a source that replaces the
// certificate in place (same pointer, new chain) is hashed again.
func (p *certPrint) same(cert *tls.Certificate) bool {
	if p.cert != cert || len(p.chain) != len(cert.Certificate) {
		return false
	}
	for i, der := range cert.Certificate {
		old := p.chain[i]
		if len(old) != len(der) || len(der) == 0 || &old[0] != &der[0] {
			return false
		}
	}
	return true
}

// resumption returns the Config's resumption state, or nil when resumption
// is off.
func (c *Config) resumption() *sessions {
	if c.DisableResumption {
		return nil
	}
	c.resumeOnce.Do(func() {
		n := c.SessionCacheSize
		if n <= 0 {
			n = DefaultSessionCacheSize
		}
		c.resume = &sessions{now: c.now, cache: newSessionCache(n)}
	})
	return c.resume
}

func (c *Config) now() time.Time {
	if c.Time != nil {
		return c.Time()
	}
	return time.Now()
}

// print returns the fingerprint of cert's chain; nil (no certificate) has
// the zero fingerprint.
func (s *sessions) print(cert *tls.Certificate) [sha256.Size]byte {
	if cert == nil || len(cert.Certificate) == 0 {
		return [sha256.Size]byte{}
	}
	if p := s.own.Load(); p != nil && p.same(cert) {
		return p.sum
	}
	h := sha256.New()
	var n [4]byte
	for _, der := range cert.Certificate {
		binary.BigEndian.PutUint32(n[:], uint32(len(der)))
		h.Write(n[:])
		h.Write(der)
	}
	p := &certPrint{cert: cert, chain: slices.Clone(cert.Certificate)}
	h.Sum(p.sum[:0])
	s.own.Store(p)
	return p.sum
}

// ticketSealer returns the sealer with its keys rotated as due.
func (s *sessions) ticketSealer() *tls.Config {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sealer != nil && now.Sub(s.rotated) < ticketRotation && !now.Before(s.rotated) {
		return s.sealer
	}
	var k ticketKey
	rand.Read(k.key[:])
	k.created = now
	keep := []ticketKey{k}
	for _, old := range s.keys {
		if age := now.Sub(old.created); age >= 0 && age < ticketLifetime {
			keep = append(keep, old)
		}
	}
	raw := make([][32]byte, len(keep))
	for i := range keep {
		raw[i] = keep[i].key
	}
	// A fresh tls.Config rather than SetSessionTicketKeys on the old one:
	// handshakes in progress keep the sealer they took.
	sealer := &tls.Config{}
	sealer.SetSessionTicketKeys(raw)
	clear(raw)
	s.keys, s.sealer, s.rotated = keep, sealer, now
	return sealer
}

// wrap seals a session for a ticket, bound to the certificate we presented
// (ours) and the peer's chain.
func (s *sessions) wrap(cs tls.ConnectionState, ss *tls.SessionState, st *serverStream) ([]byte, error) {
	b := make([]byte, 0, bindingLen)
	b = append(b, bindingTag...)
	b = binary.BigEndian.AppendUint16(b, cs.Version)
	sum := s.print(st.ours)
	b = append(b, sum[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(earliestExpiry(cs.PeerCertificates)))
	b = binary.BigEndian.AppendUint64(b, uint64(st.verified.from))
	b = binary.BigEndian.AppendUint64(b, uint64(st.verified.until))
	ss.Extra = append(ss.Extra, b)
	return s.ticketSealer().EncryptTicket(cs, ss)
}

// unwrap opens a ticket, or returns nil (a full handshake) when it is not
// one of ours, or would resume what a full handshake would not give: a
// session of TLS 1.2, of another certificate of ours, or whose peer chain
// has expired.
func (s *sessions) unwrap(identity []byte, cs tls.ConnectionState, ours *tls.Certificate) (*tls.SessionState, window) {
	ss, err := s.ticketSealer().DecryptTicket(identity, cs)
	if err != nil || ss == nil || len(ss.Extra) == 0 {
		return nil, window{}
	}
	b := ss.Extra[len(ss.Extra)-1]
	if len(b) != bindingLen || !bytes.HasPrefix(b, bindingTag) {
		return nil, window{}
	}
	b = b[len(bindingTag):]
	if binary.BigEndian.Uint16(b) != tls.VersionTLS13 {
		return nil, window{}
	}
	b = b[2:]
	if sum := s.print(ours); !bytes.Equal(b[:sha256.Size], sum[:]) {
		return nil, window{}
	}
	b = b[sha256.Size:]
	if exp := int64(binary.BigEndian.Uint64(b)); exp != 0 && s.now().Unix() > exp {
		return nil, window{}
	}
	w := window{from: int64(binary.BigEndian.Uint64(b[8:])), until: int64(binary.BigEndian.Uint64(b[16:]))}
	ss.Extra = ss.Extra[:len(ss.Extra)-1]
	return ss, w
}

// earliestExpiry is the earliest NotAfter of certs in Unix seconds, or 0.
func earliestExpiry(certs []*x509.Certificate) int64 {
	var min int64
	for i, c := range certs {
		if t := c.NotAfter.Unix(); i == 0 || t < min {
			min = t
		}
	}
	return min
}

// serverResumption sets cfg, an incoming stream's configuration, to issue
// and accept tickets of the Config's keys, bound to the certificate of ours
// the stream uses: the one it presents, or on resumption the one of the
// session, which unwrap checks is the one a full handshake would present.
func (s *sessions) serverResumption(cfg *tls.Config, source CertSource, st *serverStream) {
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := source.Certificate()
		st.ours = cert
		return cert, err
	}
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		return s.wrap(cs, ss, st)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		cert, err := source.Certificate()
		if err != nil {
			return nil, nil
		}
		ss, w := s.unwrap(identity, cs, cert)
		if ss != nil {
			st.ours, st.verified = cert, w
		}
		return ss, nil
	}
}

// clientSessions is one outgoing handshake's view of the Config's session
// cache: the keys crypto/tls uses (the server name) are prefixed with the
// fingerprint of the certificate this link presents, and what is stored
// carries the peer chain's expiry and the version that VerifyConnection
// saw.
type clientSessions struct {
	cache  *sessionCache
	prefix string
	now    func() time.Time

	// offered is the window of the session Get returned, which a resumed
	// handshake resumes.
	offered window
	// Set by VerifyConnection, on the handshake's goroutine, before the
	// session tickets that Put stores are read.
	version  uint16
	expiry   int64
	verified window
}

func (c *clientSessions) key(serverName string) string { return c.prefix + serverName }

// Get implements tls.ClientSessionCache.
func (c *clientSessions) Get(serverName string) (*tls.ClientSessionState, bool) {
	cs, w, ok := c.cache.get(c.key(serverName), c.now().Unix())
	c.offered = w
	return cs, ok
}

// Put implements tls.ClientSessionCache. crypto/tls puts nil to drop a
// session.
func (c *clientSessions) Put(serverName string, cs *tls.ClientSessionState) {
	if cs == nil || c.version != tls.VersionTLS13 {
		c.cache.remove(c.key(serverName))
		return
	}
	c.cache.put(c.key(serverName), cs, c.expiry, c.verified)
}

// seen records the connection that VerifyConnection is given; a resumed
// connection that our checks refuse drops its session, so that the next
// attempt makes a full handshake rather than fail the same way.
func (c *clientSessions) seen(serverName string, cs tls.ConnectionState, verified window, err error) {
	if err != nil && cs.DidResume {
		c.cache.remove(c.key(serverName))
	}
	c.version, c.expiry, c.verified = cs.Version, earliestExpiry(cs.PeerCertificates), verified
}

// sessionCache is a least-recently-used map of client sessions.
type sessionCache struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order list.List // of *cacheEntry, most recently used first
}

type cacheEntry struct {
	key      string
	state    *tls.ClientSessionState
	expiry   int64  // earliest NotAfter of the peer's chain, Unix; 0: none
	verified window // of the peer's chain as verified
}

func newSessionCache(max int) *sessionCache {
	return &sessionCache{max: max, items: make(map[string]*list.Element)}
}

func (c *sessionCache) get(key string, now int64) (*tls.ClientSessionState, window, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, window{}, false
	}
	e := el.Value.(*cacheEntry)
	if e.expiry != 0 && now > e.expiry {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, window{}, false
	}
	c.order.MoveToFront(el)
	return e.state, e.verified, true
}

func (c *sessionCache) put(key string, cs *tls.ClientSessionState, expiry int64, verified window) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.state, e.expiry, e.verified = cs, expiry, verified
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, state: cs, expiry: expiry, verified: verified})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

func (c *sessionCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// ShareSessions lets c resume what old issued and kept: its ticket keys
// and its session cache, when c judges certificates exactly as old does:
// the same Mode, Ciphers and Roots (x509.CertPool.Equal; nil, the system
// pool, equals only nil). A host that rebuilds its Config to reload other
// settings (a policy, a certfile) so keeps its peers' sessions; a Config
// with other roots, mode or ciphers starts with none, so that nothing made
// under the old rules resumes under the new. The certificate may differ:
// what is shared is bound to the certificate of ours that made it. The
// cache keeps old's size and rotation follows old's Time.
//
// It reports whether the state is shared: false when the settings differ,
// either Config has DisableResumption, or c was used already (call it
// before c makes its first tls.Config). old may be in use.
func (c *Config) ShareSessions(old *Config) bool {
	if old == nil || c == old || c.DisableResumption || old.DisableResumption ||
		c.Mode != old.Mode || !c.Roots.Equal(old.Roots) || !c.Ciphers.equal(old.Ciphers) {
		return false
	}
	s := old.resumption()
	shared := false
	c.resumeOnce.Do(func() {
		c.resume, shared = s, true
	})
	return shared
}
