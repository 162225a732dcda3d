package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// inStream is one incoming stream: its connection, the domain pairs dialback
// authenticated on it, and the goroutine that reads it.
type inStream struct {
	m      *Manager
	ctx    context.Context
	cancel context.CancelFunc

	wmu    sync.Mutex // serialises writes: answers come from several goroutines
	conn   net.Conn
	closed bool
	// why is the reason we closed the stream from outside its reader
	// (Reload's policy), which the reader reports instead of the closed
	// connection.
	why error
	ep  *epoch // the stream in progress; nil during a restart (guarded by wmu)

	pairs  dialback.Pairs
	authed atomic.Bool
	local  string // the 'to' of the stream header, normalised
	peer   string // the 'from' of the stream header, normalised; may be ""
	tls    tls.ConnectionState

	direct     bool // the stream began with direct TLS (ServeTLS)
	externalOK bool // SASL EXTERNAL is offered on the current stream
	saslDone   bool // SASL EXTERNAL authenticated the peer

	mu        sync.Mutex
	links     map[dialback.Pair]*inLink
	dialbacks int                // <db:result> requests received (limits.go)
	pending   map[pendingKey]int // verifications running: repeats waiting on each

	ip      netip.Addr // the peer's address, counted against MaxPerAddress
	counted bool
	key     addrKey // what the stream is counted under, when counted

	began time.Time // when the connection was accepted, for Event.Setup
}

// epoch is one stream of a connection, between two restarts (STARTTLS,
// SASL): its id and a context that ends with it. A dialback verification
// carries the epoch it was asked on, so that it uses that stream's id
// without racing the restart that replaces it, and so that its answer dies
// with its stream instead of reaching the next one (a request made in
// plaintext must never be answered, or authenticate a pair, under TLS).
type epoch struct {
	id     string
	ctx    context.Context
	cancel context.CancelFunc
}

// beginEpoch starts the epoch of a new stream header.
func (s *inStream) beginEpoch() *epoch {
	ep := &epoch{id: newStreamID()}
	ep.ctx, ep.cancel = context.WithCancel(s.ctx)
	s.wmu.Lock()
	s.ep = ep
	s.wmu.Unlock()
	return ep
}

// endEpoch ends the current stream before a restart: before <proceed/> or
// <success/> is written, so that nothing of the old stream follows them.
func (s *inStream) endEpoch() {
	s.wmu.Lock()
	ep := s.ep
	s.ep = nil
	s.wmu.Unlock()
	if ep != nil {
		ep.cancel()
	}
}

type inLink struct {
	auth  Auth
	since time.Time
	in    atomic.Uint64
}

// startIncoming registers and serves a new connection; false when closing.
func (m *Manager) startIncoming(conn net.Conn) bool {
	if mc, ok := conn.(*markedConn); ok {
		mc.Conn = m.tapped(mc.Conn)
	} else {
		conn = m.tapped(conn)
	}
	s := &inStream{m: m, conn: conn, links: make(map[dialback.Pair]*inLink), began: m.clock.Now()}
	s.ctx, s.cancel = context.WithCancel(m.ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false
	}
	m.in[s] = struct{}{}
	m.spawnAlways(s.serve)
	return true
}

func (s *inStream) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	_, err := s.conn.Write(b)
	return err
}

// closeStream ends the stream: with a stream error when se is set, else
// with </stream:stream>. Safe to call more than once, from any goroutine.
func (s *inStream) closeStream(se *stream.Error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	if se != nil {
		wire.WriteError(s.conn, *se)
	} else {
		wire.WriteClose(s.conn)
	}
	s.conn.Close()
	s.cancel()
}

// fail sends a stream error and closes; reason goes to the log.
func (s *inStream) fail(cond stream.Error, text string) error {
	se := cond
	if text != "" {
		se = withText(cond, text)
	}
	s.closeStream(&se)
	return fmt.Errorf("%s: %s", cond.Err, text)
}

func withText(e stream.Error, text string) stream.Error {
	e.Text = append(e.Text[:0:0], struct {
		Lang  string
		Value string
	}{Value: text})
	return e
}

func (s *inStream) serve() {
	m := s.m
	err := s.admit()
	if err == nil {
		err = s.run()
	}
	s.release()
	s.cancel()
	s.wmu.Lock()
	s.closed = true
	s.conn.Close()
	s.wmu.Unlock()
	m.mu.Lock()
	delete(m.in, s)
	m.mu.Unlock()
	for _, info := range s.infos() {
		m.observe(Event{Kind: LinkDown, Link: info, Err: err})
		m.log.Info("s2s: link down", "direction", "in", "local", info.Local, "remote", info.Remote, "reason", reason(err))
	}
	if err != nil && s.pairs.Len() == 0 {
		m.log.Info("s2s: incoming stream ended before authentication",
			"peer", s.peer, "addr", s.conn.RemoteAddr().String(), "reason", err)
	}
}

// run negotiates and reads the stream until it ends.
func (s *inStream) run() error {
	m := s.m
	s.conn.SetReadDeadline(time.Now().Add(m.cfg.NegotiationTimeout))
	secured, err := s.acceptDirect(m.settings())
	if err != nil {
		return err
	}
	for {
		st := m.settings()
		prev := s.peer
		r := wire.NewReader(s.conn, m.inLimits(st))
		h, err := r.ReadHeader()
		if err != nil {
			return s.headerFailed(err)
		}
		if err := s.checkHeader(h, secured); err != nil {
			return err
		}
		if err := s.checkRestartPeer(prev, h); err != nil {
			return err
		}
		if err := s.recount(h); err != nil {
			return err
		}
		if err := s.checkDirectPeer(st, h); err != nil {
			return err
		}
		ep := s.beginEpoch()
		if err := s.write(headerBytes(wire.Header{From: s.local, To: h.From, ID: ep.id})); err != nil {
			return err
		}
		if err := s.writeFeatures(st, secured); err != nil {
			return err
		}
		restart, err := s.read(r, ep, secured, h.From)
		if err != nil || !restart {
			return err
		}
		secured = true
	}
}

func headerBytes(h wire.Header) []byte {
	var b writerBuf
	wire.WriteHeader(&b, h)
	return b
}

type writerBuf []byte

func (b *writerBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// headerFailed answers a bad stream header. RFC 6120 §4.9.1.2: we still send
// our own header before the error, so the peer can parse it.
func (s *inStream) headerFailed(err error) error {
	var se stream.Error
	if errors.As(err, &se) {
		s.write(headerBytes(wire.Header{ID: newStreamID()}))
		s.closeStream(&se)
		return err
	}
	if isTimeout(err) {
		s.write(headerBytes(wire.Header{ID: newStreamID()}))
		return s.fail(stream.ConnectionTimeout, "no stream header within the negotiation timeout")
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

func (s *inStream) checkHeader(h wire.Header, secured bool) error {
	m := s.m
	reply := func() { s.write(headerBytes(wire.Header{From: h.To, To: h.From, ID: newStreamID()})) }
	if h.To == "" {
		reply()
		return s.fail(stream.ImproperAddressing, "the stream header has no 'to'")
	}
	local, ok := m.isLocal(h.To)
	if !ok {
		reply()
		return s.fail(stream.HostUnknown, fmt.Sprintf("%s is not served here", domain.Clip(h.To)))
	}
	if secured && s.local != "" && local != s.local { // s.local is unset on a direct TLS stream's first header
		reply()
		return s.fail(stream.HostUnknown, "the stream restarted for another domain")
	}
	s.local = local
	if h.From != "" {
		peer, err := domain.Normalize(h.From)
		if err != nil {
			reply()
			return s.fail(stream.InvalidFrom, fmt.Sprintf("'from' is not a domain: %v", err))
		}
		s.peer = peer
	}
	return nil
}

func (s *inStream) writeFeatures(st *settings, secured bool) error {
	var feats [][]byte
	offer, required := st.tls.Offer()
	if !secured && offer {
		feats = append(feats, st.tls.Feature())
	}
	if s.offerExternal(st, secured) {
		feats = append(feats, externalFeature)
	}
	if secured || !required {
		feats = append(feats, dialbackFeature)
	}
	if lf := s.m.limitsFeature(st); lf != nil {
		feats = append(feats, lf)
	}
	var b writerBuf
	if err := wire.WriteFeatures(&b, feats...); err != nil {
		return err
	}
	return s.write(b)
}

var (
	dialbackFeature = encode(dialback.Feature{Errors: true})
	externalFeature = saslext.Feature(saslext.Name)
)

var (
	startTLSName = xml.Name{Space: starttls.NS, Local: "starttls"}
)

// read handles the elements of one stream (between two restarts). It returns
// restart=true after a successful STARTTLS.
func (s *inStream) read(r *wire.Reader, ep *epoch, secured bool, from string) (restart bool, err error) {
	m := s.m
	in := s.inbound()
	// Moving the read deadline costs a timer update under the poller's
	// lock, about 7% of a ping round trip when done per element; so it is
	// set IdleTimeout plus a sixteenth ahead and moved only once less than
	// IdleTimeout is left. A link still never closes before IdleTimeout of
	// silence, and at most a sixteenth after.
	var readBy time.Time
	for {
		if t := m.cfg.IdleTimeout; t > 0 && s.authed.Load() {
			if now := time.Now(); readBy.Sub(now) < t {
				readBy = now.Add(t + t/16)
				s.conn.SetReadDeadline(readBy)
			}
		}
		e, err := next(r)
		if err != nil {
			return false, s.readFailed(err)
		}
		// What Reload changed (TLS mode, certificate, policy) applies to
		// each element from now on, not only to new streams.
		st := m.settings()
		if !secured {
			start, err := st.tls.Incoming(e.Name)
			switch {
			case errors.Is(err, starttls.ErrDisabled):
				s.write([]byte(starttls.Failure))
				s.closeStream(nil)
				return false, err
			case err != nil:
				var se stream.Error
				if !errors.As(err, &se) {
					se = stream.PolicyViolation
				}
				s.closeStream(&se)
				return false, err
			case start && s.pairs.Len() > 0:
				// RFC 6120 §5.3.1: TLS comes before authentication; pairs
				// authenticated in plaintext must not be carried into TLS.
				return false, s.fail(stream.PolicyViolation, "STARTTLS after dialback")
			case start:
				return true, s.startTLS(st, r, from)
			}
		} else if e.Name == startTLSName {
			return false, s.fail(stream.PolicyViolation, "STARTTLS on a stream that is already encrypted")
		}

		switch {
		case e.Name.Space == dialback.NS:
			if err := s.dialback(in, ep, e); err != nil {
				return false, err
			}
		case e.Name.Space == saslext.NS:
			if restart, err := s.external(st, r, e); err != nil || restart {
				return restart, err
			}
		case e.Name.Space == wire.NSServer && isStanzaName(e.Name.Local):
			if err := s.deliver(e); err != nil {
				return false, err
			}
		default:
			return false, s.fail(stream.UnsupportedStanzaType, fmt.Sprintf("<%s xmlns='%s'> is not handled here", domain.ClipText(e.Name.Local), domain.ClipText(e.Name.Space)))
		}
	}
}

func isStanzaName(n string) bool { return n == "message" || n == "presence" || n == "iq" }

// readFailed answers a read error: our own stream error for bad input, a
// close for the peer's close, nothing for a vanished peer.
func (s *inStream) readFailed(err error) error {
	var se stream.Error
	var pe *StreamError
	s.wmu.Lock()
	closed, why := s.closed, s.why
	s.wmu.Unlock()
	switch {
	case why != nil:
		// Reload's policy ends the stream: whatever the read saw (our
		// close, or the peer's reaction to another link closing) follows
		// from that.
		return why
	case closed && errors.Is(err, net.ErrClosed):
		// We ended the stream ourselves (Shutdown, an error already
		// sent); the reason was reported there.
		return nil
	case errors.Is(err, io.EOF):
		s.closeStream(nil)
		return nil
	case errors.As(err, &pe):
		return err
	case errors.As(err, &se):
		s.closeStream(&se)
		return err
	case isTimeout(err):
		if s.authed.Load() {
			s.closeStream(nil)
			return ErrIdle
		}
		return s.fail(stream.ConnectionTimeout, "negotiation took longer than the negotiation timeout")
	}
	return err
}

func (s *inStream) startTLS(st *settings, r *wire.Reader, from string) error {
	if n := r.Buffered(); n > 0 {
		return s.fail(stream.PolicyViolation, "data after <starttls/> before TLS")
	}
	cfg, err := st.tls.ServerConfig(s.peer)
	if err != nil {
		s.write([]byte(starttls.Failure))
		s.closeStream(nil)
		return err
	}
	s.endEpoch()
	if err := s.write([]byte(starttls.Proceed)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.m.cfg.NegotiationTimeout)
	defer cancel()
	tc, state, err := s.m.secure(ctx, s.conn, cfg, false)
	if err != nil {
		s.dropConn()
		return fmt.Errorf("TLS handshake with %s: %w", s.conn.RemoteAddr(), err)
	}
	s.setConn(tc, state)
	return nil
}

// inbound is the dialback configuration of this stream. It reads the
// settings at each request, so that a Reload applies to live streams: a
// rotated secret stops confirming keys made with the old one at once, and
// a stricter TLS mode or trust pool judges the next request.
func (s *inStream) inbound() dialback.Inbound {
	m := s.m
	return dialback.Inbound{
		Keys:    liveKeys{m},
		IsLocal: m.cfg.IsLocal,
		Allow: func(remote string) error {
			st := m.settings()
			if d := st.policy.Decide(s.ctx, remote); !d.Allowed() {
				return fmt.Errorf("%w: %w: %s", stanza.Error{Type: stanza.Cancel, Condition: stanza.PolicyViolation,
					Text: map[string]string{"": fmt.Sprintf("federation with %s is not allowed", remote)}}, ErrDenied, d)
			}
			if st.tls.Mode == starttls.RequiredTrusted {
				// The handshake checked the header's 'from' at most; every
				// domain claimed on the stream must be named by the
				// certificate (piggybacked ones included).
				s.wmu.Lock()
				state := s.tls
				s.wmu.Unlock()
				if err := st.tls.VerifyPeer(remote, state); err != nil {
					return fmt.Errorf("%w: %w", stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized,
						Text: map[string]string{"": err.Error()}}, err)
				}
			}
			return nil
		},
		Authority: authority{m: m, src: s.ip},
		Timeout:   m.cfg.NegotiationTimeout,
	}
}

// liveKeys is the KeySource of the settings in force. It is a
// KeyChecker too, so that a source that accepts more than the key it makes
// now (a Keyring in its grace period) keeps doing so.
type liveKeys struct{ m *Manager }

func (k liveKeys) Key(receiving, originating, streamID string) (string, error) {
	return k.m.settings().keys.Key(receiving, originating, streamID)
}

func (k liveKeys) CheckKey(key, receiving, originating, streamID string) (bool, error) {
	return dialback.Check(k.m.settings().keys, key, receiving, originating, streamID)
}

// pendingKey is a <db:result> request as its verification is shared: the
// pair (normalised) and the key.
type pendingKey struct {
	p   pair
	key string
}

// checkNames validates the 'from' and 'to' of a dialback element and
// returns them normalised. It comes before anything about the element is
// counted, stored or logged: the names are the peer's, as long as a stanza.
func checkNames(from, to string) (pair, error) {
	f, err := domain.Normalize(from)
	if err != nil {
		return pair{}, fmt.Errorf("dialback 'from': %w", err)
	}
	t, err := domain.Normalize(to)
	if err != nil {
		return pair{}, fmt.Errorf("dialback 'to': %w", err)
	}
	return pair{local: t, remote: f}, nil
}

func (s *inStream) dialback(in dialback.Inbound, ep *epoch, e wire.Element) error {
	el, err := decodeDialback(e)
	if err != nil {
		return s.fail(stream.BadFormat, domain.ClipText(err.Error()))
	}
	switch el := el.(type) {
	case dialback.Verify:
		p, err := checkNames(el.From, el.To)
		if err != nil {
			return s.fail(stream.ImproperAddressing, err.Error())
		}
		ans, err := in.Answer(el)
		// Per-element lines are Debug: a peer may send as many
		// <db:verify> as it likes, and a line each at Info or Warn
		// would let any stream flood the host's logs.
		if ans == (dialback.Verify{}) {
			s.m.log.Debug("s2s: dropped a dialback element", "from", p.remote, "to", p.local, "err", err)
			return nil
		}
		if err != nil {
			s.m.log.Debug("s2s: answered a key verification negatively", "from", p.remote, "to", p.local, "err", err)
		}
		return s.write(encode(ans))
	case dialback.Result:
		p, err := checkNames(el.From, el.To)
		if err != nil {
			return s.fail(stream.ImproperAddressing, err.Error())
		}
		if len(el.Key) > maxDialbackKey {
			return s.fail(stream.PolicyViolation, fmt.Sprintf("a dialback key longer than %d bytes", maxDialbackKey))
		}
		if !s.countDialback() {
			return s.fail(stream.PolicyViolation, fmt.Sprintf("more than %d dialback requests on one stream", s.m.cfg.MaxDialbackPerStream))
		}
		if el.Type != dialback.Request {
			// A peer using XEP-0288, or spoofing an answer: XEP-0220
			// §3.1 says to drop it.
			s.m.log.Warn("s2s: dropped an unsolicited dialback result", "from", p.remote, "to", p.local, "type", domain.Clip(string(el.Type)))
			return nil
		}
		k := pendingKey{p, el.Key}
		if !s.startPending(k) {
			return nil // a repeat: answered with the request it repeats
		}
		// The verification asks another server: do not hold up the stream.
		s.m.spawnAlways(func() { s.handleResult(in, ep, k, el) })
	}
	return nil
}

// startPending registers a verification for k; false when one is running,
// which then answers this request too.
func (s *inStream) startPending(k pendingKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.pending[k]; ok {
		s.pending[k] = n + 1
		return false
	}
	if s.pending == nil {
		s.pending = make(map[pendingKey]int)
	}
	s.pending[k] = 0
	return true
}

// endPending forgets the verification of k and returns how many requests
// its answer is for.
func (s *inStream) endPending(k pendingKey) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.pending[k]
	delete(s.pending, k)
	return 1 + n
}

func (s *inStream) handleResult(in dialback.Inbound, ep *epoch, k pendingKey, r dialback.Result) {
	m := s.m
	// The verification works on a copy of the stream's pairs; the pair
	// joins the stream's own set only if its stream is still the one it
	// was asked on (commit).
	pairs := s.pairs.Clone()
	ans, err := in.Handle(ep.ctx, ep.id, pairs, r)
	n := s.endPending(k)
	if !s.commit(ep, err == nil, k.p) {
		m.log.Info("s2s: dropped a dialback answer: its stream restarted or ended", "from", k.p.remote, "to", k.p.local)
		return
	}
	if err == nil {
		// Register the link before the peer learns it may send, so that
		// its first stanzas are counted and LinkUp comes before them.
		if !s.pairUp(k.p.local, k.p.remote) {
			return
		}
	}
	// One answer per request, repeats included, as the peer may count them.
	if werr := s.writeIn(ep, bytes.Repeat(encode(ans), n)); werr != nil {
		return
	}
	if err != nil {
		m.log.Warn("s2s: refused an incoming dialback request", "from", k.p.remote, "to", k.p.local, "requests", n, "err", err)
		m.observe(Event{Kind: AuthFailed, Link: linkInfo(Incoming, k.p, nil, AuthDialback, time.Time{}, 0, 0, 0), Err: err,
			Setup: m.clock.Now().Sub(s.began)})
		if ans.Type == dialback.Invalid {
			// XEP-0220 §2.2.1: an invalid key ends the stream.
			se := withText(stream.NotAuthorized, fmt.Sprintf("dialback key for %s not valid", k.p.remote))
			s.closeStream(&se)
		}
		return
	}
}

// commit reports whether ep is still the stream in progress and, when
// valid, adds p to the stream's authenticated pairs in the same step, so
// that no restart can come between the check and the pair. A stream with a
// pair refuses STARTTLS, so the pair stays with this stream.
func (s *inStream) commit(ep *epoch, valid bool, p pair) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ep != ep || s.closed {
		return false
	}
	if valid {
		s.pairs.Add(p.remote, p.local) // normalised already: cannot fail
	}
	return true
}

// writeIn writes b if ep is still the stream in progress.
func (s *inStream) writeIn(ep *epoch, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed || s.ep != ep {
		return net.ErrClosed
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	_, err := s.conn.Write(b)
	return err
}

// pairUp records a pair dialback authenticated; false when the stream
// already ended.
func (s *inStream) pairUp(local, remote string) bool {
	return s.pairUpAuth(local, remote, AuthDialback)
}

// pairUpAuth records a pair authenticated by the method auth.
func (s *inStream) pairUpAuth(local, remote string, auth Auth) bool {
	m := s.m
	s.wmu.Lock()
	closed := s.closed
	s.wmu.Unlock()
	if closed {
		return false
	}
	s.mu.Lock()
	if _, ok := s.links[dialback.Pair{From: remote, To: local}]; ok {
		s.mu.Unlock()
		return true
	}
	s.links[dialback.Pair{From: remote, To: local}] = &inLink{auth: auth, since: m.clock.Now()}
	s.mu.Unlock()
	if !s.authed.Swap(true) {
		// The first pair ends the negotiation timeout; from now on the
		// stream may idle for IdleTimeout (or forever).
		var d time.Time
		if m.cfg.IdleTimeout > 0 {
			d = time.Now().Add(m.cfg.IdleTimeout)
		}
		s.wmu.Lock()
		s.conn.SetReadDeadline(d)
		s.wmu.Unlock()
	}
	// The remote domain reached us: it is up, so stop holding off our own
	// link to it.
	if l := m.outLinkFor(pair{local, remote}); l != nil {
		l.endWait()
	}
	for _, info := range s.infos() {
		if info.Local == local && info.Remote == remote {
			m.log.Info("s2s: link up", "direction", "in", "local", local, "remote", remote,
				"tls", info.TLS(), "cipher", info.Cipher(), "auth", info.Auth)
			m.observe(Event{Kind: LinkUp, Link: info, Setup: info.Since.Sub(s.began)})
		}
	}
	return true
}

// deliver checks a stanza against the stream's authenticated pairs and hands
// it to the host.
func (s *inStream) deliver(e wire.Element) error {
	m := s.m
	if e.From == "" || e.To == "" {
		return s.fail(stream.ImproperAddressing, "a stanza between servers needs 'from' and 'to'")
	}
	from, to := domainpart(e.From), domainpart(e.To)
	if !s.pairs.Has(from, to) {
		if s.pairs.Len() == 0 {
			return s.fail(stream.NotAuthorized, "stanza before authentication")
		}
		return s.fail(stream.InvalidFrom, fmt.Sprintf("%s → %s is not authenticated on this stream", domain.Clip(from), domain.Clip(to)))
	}
	st := stanzaOf(e)
	if cf, ct := canonical(from), canonical(to); cf != from || ct != to {
		// The pair was checked in canonical form; the host must read the
		// domains the same way (faß.example is not fass.example), so it
		// gets them so, in Raw too.
		var err error
		if st, err = st.Readdress(withDomain(e.From, cf), withDomain(e.To, ct)); err != nil {
			return s.fail(stream.BadFormat, domain.ClipText(err.Error()))
		}
	}
	p, lk := s.lookup(from, to)
	if lk != nil {
		lk.in.Add(1)
	}
	if m.cfg.Observer != nil {
		m.observe(Event{Kind: StanzaIn, Link: s.linkInfo(p, lk), Stanza: st, Bytes: len(e.Raw)})
	}
	m.cfg.Deliver(st)
	return nil
}

// infos describes the stream's authenticated pairs.
func (s *inStream) infos() []LinkInfo {
	s.wmu.Lock()
	state := s.tls
	s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	infos := make([]LinkInfo, 0, len(s.links))
	for p, lk := range s.links {
		infos = append(infos, lk.info(p, &state))
	}
	return infos
}

// deniedBy reports whether the policy of st denies one of the stream's
// authenticated remote domains, with the stream error to close it with; it
// records the reason for the stream's LinkDown events (Reload closes it).
func (s *inStream) deniedBy(st *settings) (stream.Error, bool) {
	for _, info := range s.infos() {
		if d := st.policy.Decide(s.ctx, info.Remote); !d.Allowed() {
			text := fmt.Sprintf("federation with %s is no longer allowed", info.Remote)
			s.wmu.Lock()
			if !s.closed {
				s.why = fmt.Errorf("%w: %s (%s)", ErrDenied, text, d)
			}
			s.wmu.Unlock()
			return withText(stream.PolicyViolation, text), true
		}
	}
	return stream.Error{}, false
}
