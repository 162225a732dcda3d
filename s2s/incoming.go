package s2s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/keepalive"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// inStream is one incoming stream: its connection, the domain pairs
// authenticated on it, and the goroutine that reads it. Its negotiation
// (the connection layer, the state bits) is the embedded negotiator's; the
// features it offers and the elements it takes are the entries of the
// table (stream.go).
type inStream struct {
	negotiator
	ctx    context.Context
	cancel context.CancelFunc

	// Under wmu, with conn and tls: writes are serialised there, as
	// answers come from several goroutines.
	closed bool
	// peerClosed: closed answering the peer's own </stream:stream>, so
	// that a link writing back on the stream (inView) is told the peer
	// closed it, as the stream's end tells it a moment later (endViews),
	// and not that its write found a closed connection.
	peerClosed bool
	// why is the reason we closed the stream from outside its reader
	// (Reload's policy), which the reader reports instead of the closed
	// connection.
	why error
	ep  *epoch // the stream in progress; nil during a restart
	// bidi: the peer asked for a bidirectional stream (bidi.go), on an
	// encrypted stream when bidiSecure.
	bidi, bidiSecure bool
	// views are the outgoing links writing to this stream (bidi.go),
	// woken when it ends; done is closed then, after endErr is set.
	views  []*outLink
	done   chan struct{}
	endErr error
	// writers counts the views attached and not closed: with more than
	// one, each batch asks for its own <r/> (revWrite).
	writers atomic.Int32

	pairs dialback.Pairs
	local string // the 'to' of the stream header, normalised
	peer  string // the 'from' of the stream header, normalised; may be ""
	// trustedBy is the starttls.Config whose required_trusted handshake
	// (STARTTLS or direct TLS) checked the peer's chain, and trusted the
	// name it checked the certificate for as well, or "" (see verifyPeer);
	// under wmu.
	trusted   string
	trustedBy *starttls.Config

	inb   dialback.Inbound // the dialback configuration, made on first use
	inbOK bool

	sm smIn // XEP-0198, once the peer enabled it (sm.go)
	// rsm is XEP-0198 for what our links write back on a bidi stream
	// (smrev.go), set with wmu held; revTimer (under mu) asks for its
	// acknowledgements when a link parks with stanzas no <r/> covered.
	rsm      atomic.Pointer[smRev]
	revTimer timer
	// ka counts every byte the peer sends as life; with XEP-0198 on, a
	// silent peer is probed with <r/> (kaTimer, under mu) and the stream
	// ends when it stays silent (sm.go).
	ka      *keepalive.Monitor
	kaTimer timer

	mu        sync.Mutex
	links     map[dialback.Pair]*inLink
	dialbacks int                // <db:result> requests received (limits.go)
	pending   map[pendingKey]int // verifications running: repeats waiting on each

	ip      netip.Addr // the peer's address, counted against MaxPerAddress
	counted bool
	key     addrKey // what the stream is counted under, when counted

	// lastLink is what the reader's lookup last found (inlink.go), and
	// domains the domains of the last stanza's from and to; the reader's
	// own.
	lastLink foundLink
	domains  domainsOf

	// readBy is the read deadline IdleTimeout set, as time since
	// monoBase, moved by pushIdle.
	readBy atomic.Int64
	// park is the reader as the park sweep sees it (park.go).
	park parking

	began time.Time // when the connection was accepted, for Event.Setup
	sid   uint64    // LinkInfo.Stream
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
	// listed is the entries this stream's features offered (set by the
	// reader, read by entries' handle on the reader's goroutine).
	listed featureID
	// open: our features of this stream were written; from then on the
	// stream may carry our stanzas (bidi.go). Guarded by wmu.
	open bool
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
	s := &inStream{links: make(map[dialback.Pair]*inLink), began: m.clock.Now(), done: make(chan struct{}), sid: m.streamIDs.Add(1)}
	if mc, ok := conn.(*markedConn); ok {
		mc.Conn = s.alive(m, m.tapped(mc.Conn))
	} else {
		conn = s.alive(m, m.tapped(conn))
	}
	s.m, s.conn = m, conn
	s.ctx, s.cancel = context.WithCancel(m.ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false
	}
	m.in[s] = struct{}{}
	m.sweepSoon()
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
		if a := s.sm.finalAnswer(); a != nil {
			s.conn.Write(a)
		}
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
	err := s.admit()
	if err == nil {
		err = s.run()
	}
	if err != errParked {
		s.end(err)
	}
}

// errParked is what the reading loop returns when it handed itself to a
// new goroutine (park.go): the stream goes on there, and that goroutine
// ends it.
var errParked = errors.New("s2s: reader parked")

// readOn is the reader's loop on the goroutine a parked reader started:
// the rest of the stream in progress, then the streams after it, until the
// stream ends or parks again.
func (s *inStream) readOn(r *wire.Reader, ep *epoch) {
	restart, err := s.read(r, ep)
	if err == nil && restart {
		err = s.streams()
	}
	if err != errParked {
		s.end(err)
	}
}

// end takes the stream down and reports it. It is apart from serve, and
// never inlined into it, because serve's frame stays on the stack of every
// idle incoming stream for as long as the stream lives (see wire's
// Reader.Await): this part's locals would more than double it.
//
//go:noinline
func (s *inStream) end(err error) {
	m := s.m
	s.release()
	s.cancel()
	s.stopKeepAlive()
	s.wmu.Lock()
	wasClosed := s.closed
	s.closed = true
	s.conn.Close()
	switch {
	case s.why != nil:
		// Reload's policy closed the stream: that is the reason,
		// whatever the reader or a write of its saw after (net.ErrClosed
		// from answering an element that was already on its way).
		err = s.why
	case wasClosed && errors.Is(err, net.ErrClosed):
		// We had closed it (Shutdown, a stream error already sent) and
		// the reader's answer to an element on its way found it so: the
		// reason was reported there, as readFailed says for a read.
		err = nil
	}
	held := s.endRevLocked()
	s.wmu.Unlock()
	m.unindexBidi(s)
	// What our links wrote back on the stream and the peer did not
	// acknowledge goes to each stanza's own link (requeue.go).
	m.handBack(held, endReason(err))
	s.endViews(err)
	for _, info := range s.infos() {
		m.observe(Event{Kind: LinkDown, Link: info, Err: err})
		m.log.Info("s2s: link down", "direction", "in", "local", info.Local, "remote", info.Remote, "reason", reason(err))
	}
	if err != nil && s.pairs.Len() == 0 {
		m.log.Info("s2s: incoming stream ended before authentication",
			"peer", s.peer, "addr", s.conn.RemoteAddr().String(), "reason", err)
	}
}

// run negotiates and reads the stream until it ends: direct TLS when the
// listener says so, then one stream per header, each answered with our
// header and features (stream.go) and read until it restarts or ends.
func (s *inStream) run() error {
	m := s.m
	s.conn.SetReadDeadline(time.Now().Add(m.cfg.NegotiationTimeout))
	if err := s.acceptDirect(m.settings()); err != nil {
		return err
	}
	return s.streams()
}

// streams reads one stream per header until the connection ends: each is
// answered with our header and features (stream.go) and read until it
// restarts or ends.
func (s *inStream) streams() error {
	m := s.m
	for {
		st := m.settings()
		prev := s.peer
		s.r = wire.NewReader(s.conn, m.inLimits(st))
		s.park.watch(s.r, s.conn, s.resumeDeadline)
		h, err := s.r.ReadHeader()
		if err != nil {
			return s.headerFailed(err)
		}
		if err := s.checkHeader(h); err != nil {
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
		// Header and features go out in one write: the peer reads both
		// before it can say anything, and two writes cost it a second
		// wake-up (and us a second syscall and TLS record) per stream.
		hf := headerBytes(wire.Header{From: s.local, To: h.From, ID: ep.id})
		if hf, err = s.appendFeatures(hf, st, ep); err != nil {
			return err
		}
		if err := s.write(hf); err != nil {
			return err
		}
		s.wmu.Lock()
		ep.open = true
		s.wmu.Unlock()
		if s.isBidi() {
			s.offerMoves() // the stream after SASL may carry ours now (bidimove.go)
		}
		restart, err := s.read(s.r, ep)
		if err != nil || !restart {
			return err
		}
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

func (s *inStream) checkHeader(h wire.Header) error {
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
	if s.is(stateSecure) && s.local != "" && local != s.local { // s.local is unset on a direct TLS stream's first header
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

// read takes the elements of one stream (between two restarts) and hands
// each to dispatch (stream.go). It returns restart=true when an entry
// restarted the stream (STARTTLS, SASL).
func (s *inStream) read(r *wire.Reader, ep *epoch) (restart bool, err error) {
	m := s.m
	var e wire.Element
	// Moving the read deadline costs a timer update under the poller's
	// lock, about 7% of a ping round trip when done per element; so it is
	// set IdleTimeout plus a sixteenth ahead and moved only once less than
	// IdleTimeout is left. A link still never closes before IdleTimeout of
	// silence, and at most a sixteenth after. Our own stanzas back over a
	// bidi stream move it too (inView.writeBatch): the stream is busy.
	// It is looked at just before each read from the connection, not per
	// element: reading the clock was 5% of the answering Manager's ping
	// path, for the tens of elements one read brings; and the deadline
	// matters only to a read, which so never finds it set before a host's
	// slow Deliver of the elements ahead of it.
	r.BeforeRead(s.beforeRead)
	for {
		// Wait for the peer here, not inside next: see wire's Await. A
		// wait the park sweep interrupted goes on on a new goroutine.
		if r.Await() {
			// The last stanza's from and to are let go, as wire's
			// parser lets go of its own: a parked stream holds none.
			s.domains = domainsOf{}
			m.parked(&s.park, true)
			m.spawnAlways(func() {
				m.waitParked(s.park.conn)
				s.readOn(r, ep)
			})
			return false, errParked
		}
		if err := nextInto(r, &e); err != nil {
			return false, s.readFailed(err)
		}
		// What Reload changed (TLS mode, certificate, policy) applies to
		// each element from now on, not only to new streams.
		fl, err := s.dispatch(m.settings(), ep, &e)
		if err != nil || fl == flowRestart {
			return fl == flowRestart, err
		}
	}
}

// beforeRead is the stream reader's wire.Reader.BeforeRead: the idle
// deadline, once authenticated.
func (s *inStream) beforeRead() {
	if s.is(stateAuthed) {
		s.pushIdle()
	}
}

// pushIdle moves the stream's read deadline IdleTimeout (and a
// sixteenth) ahead when less than IdleTimeout is left: before each read,
// and on each batch our links write back over a bidi stream, from
// their goroutines (a deadline may be moved while a read waits).
func (s *inStream) pushIdle() {
	t := s.m.cfg.IdleTimeout
	if t <= 0 {
		return
	}
	// time.Since reads the monotonic clock only (time.Now reads the wall
	// clock too): this runs once per element.
	now := time.Since(monoBase)
	if s.readBy.Load()-int64(now) >= int64(t) {
		return
	}
	s.readBy.Store(int64(now + t + t/16))
	// Under the park's lock, which the sweep holds while it asks for an
	// interrupt (wake, then a deadline in the past): checked outside it,
	// the request could come between the check and the move, and the
	// move would undo its deadline until the next sweep. Once per
	// sixteenth of IdleTimeout, not per element.
	p := &s.park
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake.Load() {
		// The park sweep's interrupt is pending: its deadline in the
		// past stays, and the reader puts readBy's back as it takes it
		// (resumeDeadline), this one included.
		return
	}
	s.conn.SetReadDeadline(time.Now().Add(t + t/16))
}

// monoBase is what inStream.readBy counts from.
var monoBase = time.Now()

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
		s.wmu.Lock()
		s.peerClosed = !s.closed
		s.wmu.Unlock()
		s.closeStream(nil)
		return nil
	case errors.As(err, &pe):
		return err
	case errors.As(err, &se):
		s.closeStream(&se)
		return err
	case isTimeout(err):
		if s.is(stateAuthed) {
			s.closeStream(nil)
			return ErrIdle
		}
		return s.fail(stream.ConnectionTimeout, "negotiation took longer than the negotiation timeout")
	}
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
	if s.set(stateAuthed) {
		// The first pair ends the negotiation timeout; from now on the
		// stream may idle for IdleTimeout (or forever).
		// readBy first, then the deadline, as pushIdle does: the park
		// sweep puts back the deadline readBy says (resumeDeadline).
		var d time.Time
		if t := m.cfg.IdleTimeout; t > 0 {
			by := time.Since(monoBase) + t
			s.readBy.Store(int64(by))
			d = monoBase.Add(by)
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
				"tls", info.TLS(), "cipher", info.Cipher(), "tls_resumed", info.TLSResumed, "auth", info.Auth)
			m.observe(Event{Kind: LinkUp, Link: info, Setup: info.Since.Sub(s.began)})
		}
	}
	return true
}

// routeBack lets our links use a bidi stream for the reverse of the pair
// (local, remote), which pairUpAuth registered: they find it through the
// index, and one on a connection of its own may move onto it
// (bidimove.go). Under SASL EXTERNAL it is called at <success/>, the view
// itself waiting for the stream after it (inView's ep.open); under
// dialback the index is made with the answer (writeIn), since a stanza
// of ours before it breaks the peer's negotiation, and offerBack follows.
func (s *inStream) routeBack(local, remote string) {
	if s.isBidi() {
		s.m.indexBidi(s, pair{local, remote})
		s.offerMoves()
	}
}

// offerBack lets our links on connections of their own consider moving
// onto the stream (bidimove.go), once a pair was answered.
func (s *inStream) offerBack() {
	if s.isBidi() {
		s.offerMoves()
	}
}

// deliver checks a stanza against the stream's authenticated pairs and hands
// it to the host.
func (s *inStream) deliver(e *wire.Element) error {
	m := s.m
	if e.From == "" || e.To == "" {
		return s.fail(stream.ImproperAddressing, "a stanza between servers needs 'from' and 'to'")
	}
	from, to := s.domains.of(e.From, e.To)
	auth, matched := s.pairs.Match(from, to)
	if !matched {
		if s.pairs.Len() == 0 {
			return s.fail(stream.NotAuthorized, "stanza before authentication")
		}
		return s.fail(stream.InvalidFrom, fmt.Sprintf("%s → %s is not authenticated on this stream", domain.Clip(from), domain.Clip(to)))
	}
	st := stanzaOf(e)
	// The pair as it was authenticated, in normal form: each domain is
	// normalised at most once per stanza (it was 2-5% of the ping path when
	// every use did it again), and not at all when the peer wrote it so.
	cf, ct := auth.From, auth.To
	if cf != from || ct != to {
		// The pair was checked in canonical form; the host must read the
		// domains the same way (faß.example is not fass.example), so it
		// gets them so, in Raw too.
		var err error
		if st, err = st.Readdress(withDomain(e.From, cf), withDomain(e.To, ct)); err != nil {
			return s.fail(stream.BadFormat, domain.ClipText(err.Error()))
		}
	}
	if e.Name.Local == "iq" && m.pong(e, ct, cf) {
		// The answer to our keepalive ping (smout.go): not the host's.
		s.sm.handled()
		return nil
	}
	p, lk := s.lookup(cf, ct)
	if lk != nil {
		lk.in.Add(1)
	}
	if m.cfg.Observer != nil {
		m.observe(Event{Kind: StanzaIn, Link: s.linkInfo(p, lk), Stanza: st, Bytes: len(e.Raw)})
	}
	// Counted before the host sees it: Deliver cannot refuse a stanza, and
	// a host that reacts to it (a Shutdown, say) must find it in the last
	// <a/> of the stream.
	s.sm.handled()
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
		info := lk.info(p, &state, s.sid)
		info.StreamManagement = s.sm.on.Load()
		infos = append(infos, info)
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
