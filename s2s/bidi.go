package s2s

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// Bidirectional streams (XEP-0288), the stream feature. Without it a
// stream carries stanzas one way, from the server that opened it, and two
// servers that talk both ways hold two connections. With it the receiving
// server may send stanzas back over the stream, for the reverse of what was
// authenticated on it:
//
//   - after SASL EXTERNAL, from the stream's 'to' to its 'from' (the domain
//     the certificate proved);
//   - after dialback, for each verified pair (from → to), to → from.
//
// The rules this file keeps, from the XEP and from Prosody's module (the
// one peer that has it; internal/interop pins what it does):
//
//   - the receiving side offers <bidi xmlns='urn:xmpp:features:bidi'/>
//     before TLS (when TLS is not required) and after it, never after
//     SASL: the request belongs before authentication;
//   - the initiating side sends <bidi xmlns='urn:xmpp:bidi'/> once, after
//     TLS and before SASL or dialback, on streams that authenticate a pair
//     (not on a stream opened for one <db:verify>);
//   - a request made in plaintext does not survive STARTTLS (TLS comes
//     first, XEP-0288 §2.1): the peer asks again on the encrypted stream,
//     as Prosody does;
//   - a stanza that arrives on our outgoing bidi stream is delivered only
//     for a reverse pair of that stream, within the limits of an incoming
//     stream (max_stanza_size, MaxDepth; under max_stanza_size =
//     "infinity" the outgoing stream's reader still stops at 1 MiB); any
//     other pair, or a larger stanza, ends the stream, as on an incoming
//     one.
//
// Config.DisableBidi turns both sides off.

const (
	nsBidi        = "urn:xmpp:bidi"
	nsBidiFeature = "urn:xmpp:features:bidi"
)

var (
	bidiFeature = []byte("<bidi xmlns='" + nsBidiFeature + "'/>")
	bidiRequest = []byte("<bidi xmlns='" + nsBidi + "'/>")
)

var bidiEntry = feature{
	id:   featBidi,
	name: xml.Name{Space: nsBidiFeature, Local: "bidi"},
	ns:   nsBidi,
	// After SASL the stream is authenticated: too late to ask.
	prohibited: stateSASL,
	list:       (*inStream).listBidi,
	handle:     (*inStream).handleBidi,
	negotiate:  (*outStream).bidi,
}

// listBidi offers bidi unless it is off, or TLS is required and not done
// yet (a request before TLS would not survive it).
func (s *inStream) listBidi(st *settings) []byte {
	if s.m.cfg.DisableBidi {
		return nil
	}
	if _, required := st.tls.Offer(); required && !s.is(stateSecure) {
		return nil
	}
	return bidiFeature
}

// handleBidi takes the peer's <bidi/> request. A request we did not offer
// on this stream is an element we do not handle.
func (s *inStream) handleBidi(_ *settings, ep *epoch, e wire.Element) (flow, error) {
	if e.Name.Local != "bidi" || ep.listed&featBidi == 0 {
		return flowOn, s.unsupported(e)
	}
	s.wmu.Lock()
	s.bidi = true
	s.bidiSecure = s.is(stateSecure)
	s.wmu.Unlock()
	return flowOn, nil
}

// isBidi reports whether the peer asked for bidi on this connection, in
// its present layer: a request made before STARTTLS does not count after.
func (s *inStream) isBidi() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.bidi && (s.bidiSecure || !s.is(stateSecure))
}

// bidi asks for a bidirectional stream when the peer offers one, before
// SASL or dialback (the entries after this one).
func (o *outStream) bidi(f *wire.Feature) (flow, error) {
	if f == nil || o.bidiAsked || !o.wantAuth || o.m.cfg.DisableBidi {
		return flowOn, nil
	}
	// No answer comes: the request goes out with the authentication
	// request that follows (send), in one write.
	o.held = append(o.held, bidiRequest...)
	o.bidiAsked = true
	return flowOn, nil
}

// deliverReverse hands the host a stanza the peer sent over our outgoing
// bidi stream, if its pair is the reverse of one authenticated on it; any
// other stanza is a stream error, as on an incoming stream.
func (oc *outConn) deliverReverse(m *Manager, e *wire.Element) error {
	if !oc.bidi {
		return newStreamFault(stream.UnsupportedStanzaType, "a stanza on a stream that is not bidirectional")
	}
	if e.From == "" || e.To == "" {
		return newStreamFault(stream.ImproperAddressing, "a stanza between servers needs 'from' and 'to'")
	}
	if max := m.settings().s2s.MaxStanzaSize; max > 0 && int64(len(e.Raw)) > max {
		// Our reader bounds what an outgoing stream's peer sends at 1 MiB
		// (wire.DefaultLimits); max_stanza_size, which bounds incoming
		// streams, bounds the stanzas of this one too.
		return newStreamFault(stream.PolicyViolation, fmt.Sprintf("a stanza of %d bytes, over max_stanza_size (%d)", len(e.Raw), max))
	}
	from, to := oc.domains.of(e.From, e.To)
	auth, matched := oc.rev.Match(from, to)
	if !matched {
		return newStreamFault(stream.InvalidFrom, fmt.Sprintf("%s → %s is not authenticated on this stream", domain.Clip(from), domain.Clip(to)))
	}
	// The peer's direction is busy: the link is not idle (outLink's
	// idleFired).
	oc.lastRev.Store(oc.heard(m).UnixNano())
	if x := oc.sm.Load(); x != nil && x.on() {
		// Handled, for the peer's XEP-0198 count of what it sends back
		// over our stream: counted before the host sees it, as on an
		// incoming stream (smrev.go has the peer's side). The count
		// starts at the peer's <enabled/>, which this goroutine read
		// (answeredEnable) if it came before this stanza: one that
		// came before it is delivered and not counted.
		oc.rh.Add(1)
	}
	// The pair in normal form, as on an incoming stream.
	cf, ct := auth.From, auth.To
	if m.pong(e, ct, cf) {
		return nil // the answer to a keepalive ping (smout.go)
	}
	st := stanzaOf(e)
	if cf != from || ct != to {
		// As on an incoming stream: the host reads the domains that were
		// authenticated, in canonical form.
		var err error
		if st, err = st.Readdress(withDomain(e.From, cf), withDomain(e.To, ct)); err != nil {
			return newStreamFault(stream.BadFormat, domain.ClipText(err.Error()))
		}
	}
	oc.readerCount(ct, cf).Add(1)
	if m.cfg.Observer != nil {
		m.observe(Event{Kind: StanzaIn, Link: oc.reverseInfo(ct, cf), Stanza: st, Bytes: len(e.Raw)})
	}
	m.cfg.Deliver(st)
	return nil
}

// addReverse lets the peer of our bidi stream send for the reverse of p.
func (oc *outConn) addReverse(p pair) {
	oc.rev.Add(p.remote, p.local)
	oc.pmu.Lock()
	if oc.revCnt == nil {
		oc.revCnt = make(map[dialback.Pair]*atomic.Uint64)
	}
	if k := (dialback.Pair{From: p.remote, To: p.local}); oc.revCnt[k] == nil {
		oc.revCnt[k] = new(atomic.Uint64)
	}
	oc.pmu.Unlock()
}

// reverseCount is the count of stanzas delivered for the reverse pair
// (local, remote) of the stream, in canonical form.
func (oc *outConn) reverseCount(local, remote string) *atomic.Uint64 {
	oc.pmu.Lock()
	defer oc.pmu.Unlock()
	if c := oc.revCnt[dialback.Pair{From: remote, To: local}]; c != nil {
		return c
	}
	return new(atomic.Uint64) // not a reverse pair (any more): counts nothing
}

// readerCount is reverseCount for the reader: it keeps the last pair's
// counter, so that a run of stanzas for one pair takes no lock and no map
// lookup each (a counter, once made, is never replaced). local and remote
// are the pair as authenticated, whose strings the set hands out each
// time, so the comparison is of the same strings.
func (oc *outConn) readerCount(local, remote string) *atomic.Uint64 {
	if c := oc.revLast; c.n != nil && c.local == local && c.remote == remote {
		return c.n
	}
	oc.pmu.Lock()
	n := oc.revCnt[dialback.Pair{From: remote, To: local}]
	oc.pmu.Unlock()
	if n == nil {
		return new(atomic.Uint64) // not a reverse pair: counts nothing
	}
	oc.revLast = revCounter{local, remote, n}
	return n
}

// revCounter is a reverse pair's counter, as the reader last used it.
type revCounter struct {
	local, remote string
	n             *atomic.Uint64
}

// reverseInfo describes the reverse pair (local, remote) of an outgoing
// bidi stream: an incoming link carried on our stream.
func (oc *outConn) reverseInfo(local, remote string) LinkInfo {
	auth := oc.auth
	if (pair{local, remote}) != oc.p {
		// The reverse of a pair piggybacked on the stream: dialback
		// authenticated it, whatever authenticated the stream's own.
		auth = AuthDialback
	}
	info := linkInfo(Incoming, pair{local, remote}, &oc.tls, auth, oc.since, oc.reverseCount(local, remote).Load(), 0, 0)
	info.Stream = oc.sid
	info.StreamManagement = oc.sm.Load() != nil // we count and acknowledge what the peer sends back (from its <enabled/>)
	return info
}

// fault ends the stream with the stream error of err, when it is ours to
// send (a fault of the peer's we found, or bad input our reader refused),
// as the reader that found it; the link's owner then closes the connection
// (it sees the reader end).
func (oc *outConn) fault(m *Manager, err error) {
	var f *streamFault
	var se stream.Error
	switch {
	case errors.As(err, &f):
		se = f.se
	case errors.As(err, &se):
		// The reader's own condition; the peer's stream errors come as a
		// *StreamError, which does not unwrap to one.
	default:
		return
	}
	// Under the write lock, as sayClose: the error never lands between
	// the flushes of a batch in progress, it closes the stream (WriteError
	// writes </stream:stream> after it) so no later close is written, and
	// no batch goes out after it (writeBatch refuses once said is set), to
	// be counted written on a stream the peer stops reading.
	oc.wmu.Lock()
	defer oc.wmu.Unlock()
	if oc.said.Swap(true) {
		return // our close is out: nothing may follow it
	}
	oc.conn.SetWriteDeadline(time.Now().Add(m.cfg.WriteTimeout))
	wire.WriteError(oc.conn, se)
}

// streamFault is a stream error we end a stream with, and its reason.
type streamFault struct {
	se stream.Error
}

func newStreamFault(cond stream.Error, text string) *streamFault {
	return &streamFault{withText(cond, text)}
}

func (f *streamFault) Error() string {
	if len(f.se.Text) > 0 {
		return f.se.Err + ": " + f.se.Text[0].Value
	}
	return f.se.Err
}

// inView is an outgoing link's view of an incoming bidi stream that
// authenticated the reverse of the link's pair: the link writes its
// stanzas there instead of opening a connection. The stream stays the
// peer's: the link closing its view (idle, drained, denied) leaves it
// open for the peer's direction, and the stream ending (the peer closed
// it, its idle timeout, Reload's policy, Shutdown) takes the link down like
// any lost stream, its queue going to a new attempt.
type inView struct {
	s    *inStream
	pair pair
	w    *wire.Writer // guarded by s.wmu
	// held counts the stanzas the link wrote here that the peer has not
	// acknowledged (XEP-0198, smrev.go).
	held atomic.Int64

	closed atomic.Bool
	// counted: the view is in its stream's writers count.
	counted atomic.Bool
}

var _ linkStream = (*inView)(nil)

// bidiRoute returns a view of an incoming bidi stream that may carry p's
// stanzas, or nil: one whose peer asked for bidi, that authenticated
// p.remote → p.local (by SASL EXTERNAL or dialback), and whose current
// stream has begun (after SASL, the stream that follows <success/>). It
// looks only at the streams indexed for p (indexBidi), not at every
// incoming stream.
func (m *Manager) bidiRoute(p pair) *inView {
	if m.cfg.DisableBidi {
		return nil
	}
	m.mu.Lock()
	ins := append([]*inStream(nil), m.bidiIn[p]...)
	m.mu.Unlock()
	for _, s := range ins {
		if s.carries(p) {
			return &inView{s: s, pair: p}
		}
	}
	return nil
}

// indexBidi records that the bidi stream s authenticated the reverse of
// p, so that p's link finds it without looking at every incoming stream
// (a server may hold thousands). A stream that already ended (end took it
// out of m.in) is not indexed.
func (m *Manager) indexBidi(s *inStream, p pair) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.in[s]; !ok || slices.Contains(m.bidiIn[p], s) {
		return
	}
	m.bidiIn[p] = append(m.bidiIn[p], s)
}

// unindexBidi takes an ended stream out of m.in and the bidi index.
func (m *Manager) unindexBidi(s *inStream) {
	s.mu.Lock()
	ps := make([]pair, 0, len(s.links))
	for k := range s.links {
		ps = append(ps, pair{k.To, k.From})
	}
	s.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.in, s)
	for _, p := range ps {
		ins := slices.DeleteFunc(m.bidiIn[p], func(x *inStream) bool { return x == s })
		if len(ins) == 0 {
			delete(m.bidiIn, p)
		} else {
			m.bidiIn[p] = ins
		}
	}
}

// carries reports whether the stream may carry our stanzas for p.
func (s *inStream) carries(p pair) bool {
	if !s.isBidi() {
		return false
	}
	s.mu.Lock()
	_, ok := s.links[dialback.Pair{From: p.remote, To: p.local}]
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return !s.closed && s.ep != nil && s.ep.open
}

// attach registers l as writing to the view's stream, to be woken when the
// stream ends; if it has ended already, l is woken now.
func (v *inView) attach(l *outLink) {
	s := v.s
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		l.signal()
		return
	default:
	}
	s.views = append(s.views, l)
	s.mu.Unlock()
	if v.counted.CompareAndSwap(false, true) {
		s.writers.Add(1)
		if v.closed.Load() {
			v.uncount() // closed meanwhile: whichever of us uncounts, once
		}
	}
}

// uncount takes a closed view out of its stream's writers count.
func (v *inView) uncount() {
	if v.counted.CompareAndSwap(true, false) {
		v.s.writers.Add(-1)
	}
}

// endReason is why an incoming stream that ended with err ended, for the
// links writing to it: the peer closing its stream (or we, cleanly) is
// the peer's close.
func endReason(err error) error {
	if errors.Is(err, io.EOF) || err == nil {
		return ErrPeerClosed
	}
	return err
}

// endViews records why the stream ended and wakes the links writing to it,
// which then take themselves down.
func (s *inStream) endViews(err error) {
	err = endReason(err)
	s.mu.Lock()
	s.endErr = err
	close(s.done)
	views := s.views
	s.views = nil
	s.mu.Unlock()
	for _, l := range views {
		l.signal()
	}
}

func (v *inView) writeBatch(ctrl [][]byte, batch []Stanza) (int, error) {
	s := v.s
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed || v.closed.Load() || s.ep == nil || !s.ep.open {
		why := net.ErrClosed
		switch {
		case s.why != nil:
			why = s.why // the stream was ended for a reason (keepalive, policy)
		case s.peerClosed:
			why = ErrPeerClosed // a clean close, not a lost stream
		}
		return 0, fmt.Errorf("incoming stream from %s: %w", v.pair.remote, why)
	}
	if v.w == nil {
		v.w = wire.NewWriter(s.conn, 0)
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.m.cfg.WriteTimeout))
	done, err := s.revWrite(v, ctrl, batch)
	if done > 0 {
		// Our direction is busy: the stream is not idle (IdleTimeout
		// counts both directions of a bidi stream).
		s.pushIdle()
	}
	if err != nil {
		// A write cut short leaves part of a stanza on the stream (and a
		// TLS connection unusable after a timeout): the stream is over,
		// for the peer's direction too. Its reader ends it, handing
		// what the peer did not acknowledge back to the links.
		if s.why == nil {
			s.why = fmt.Errorf("writing to %s: %w", domain.Clip(s.peer), err)
		}
		s.closed = true
		s.conn.Close()
	}
	return done, err
}

func (v *inView) ended() <-chan struct{} { return v.s.done }

func (v *inView) endErr() error {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return v.s.endErr
}

// unacked is nil: the stream, which several links may write to, hands
// what the peer did not acknowledge back to each stanza's own link when it
// ends (inStream.end, requeue.go), whether or not a link still writes to
// it then.
func (v *inView) unacked(*Manager, pair, error) []Stanza { return nil }
func (v *inView) streamID() uint64                       { return v.s.sid }

// close detaches the link: the stream is the peer's, and carries its
// direction still. It ends with the incoming stream (its reader, Reload,
// Shutdown), never because our direction has nothing to say.
func (v *inView) close(bool, error) {
	v.closed.Store(true)
	v.uncount()
}

func (v *inView) security() (*tls.ConnectionState, Auth) {
	s := v.s
	s.wmu.Lock()
	state := s.tls
	s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var auth Auth
	if lk := s.links[dialback.Pair{From: v.pair.remote, To: v.pair.local}]; lk != nil {
		auth = lk.auth
	}
	return &state, auth
}

// reverseInfos describes the reverse of the link's pair when the link's
// stream is our outgoing bidi stream: an incoming link carried on it.
func (l *outLink) reverseInfos() []LinkInfo {
	l.mu.Lock()
	ls := l.conn
	l.mu.Unlock()
	return reverseInfos(ls, l.pair)
}

// reverseInfos describes the reverse of p when ls is our outgoing bidi
// stream (or a share of one) and p's reverse was authenticated on it; nil
// otherwise. The link's LinkUp and LinkDown come with one for it, so that
// the Observer (metrics, a cluster's Registry) counts the incoming
// direction the stream carries.
func reverseInfos(ls linkStream, p pair) []LinkInfo {
	var oc *outConn
	switch ls := ls.(type) {
	case *outConn:
		oc = ls
	case *shareView:
		oc = ls.oc
	}
	if oc == nil || !oc.bidi || !oc.rev.Has(p.remote, p.local) {
		return nil
	}
	return []LinkInfo{oc.reverseInfo(p.local, p.remote)}
}
