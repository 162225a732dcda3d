package s2s

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp-s2s/federation/internal/keepalive"
	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// The outgoing side of XEP-0198 and the keepalive: what a stream keeps
// after writing (smOut, which outConn's writeBatch and unacked use), what
// the stream's reader does with the peer's <a/> and <r/>, and the timers
// that ask for acknowledgements and probe a silent link.

// ErrKeepAlive is the reason of a link declared dead because the peer
// stopped answering: a keepalive probe (XEP-0198 <r/> or XEP-0199 ping) or
// an acknowledgement request went unanswered for Config.KeepAlive. What the
// link had not had acknowledged goes to a new link, as for a link the peer
// dropped.
var ErrKeepAlive = errors.New("s2s: the peer stopped answering")

// errSMCount is the reason of a link whose peer acknowledged stanzas we
// never wrote (XEP-0198 §4: the counts cannot be trusted any more).
var errSMCount = errors.New("s2s: the peer's stream management count is wrong")

var smRequest = [][]byte{sm.Request}

// smOut is XEP-0198 on one outgoing stream: the stanzas written and not
// acknowledged, in order. The link's owner writes (record), the stream's
// reader applies the peer's <a/> (ack) and its answer to <enable/>
// (enabled); mu serialises them, once per batch and once per
// acknowledgement, not per stanza.
//
// On a stream of our own, <enable/> goes out with the link's first write
// and the stanzas of that write follow it at once (pipelined: XEP-0198 §4
// counts the initiating entity's stanzas from its <enable/>, and the
// receiving entity's from its <enabled/>, which it writes as it reads
// <enable/>, before the stanzas behind it). Until the peer's answer the
// sender is pending: what is written is kept and counted, as with stream
// management on, but no <r/> goes out (a peer that answers <failed/> would
// take a <r/> for misuse of a protocol it refused), and a <r/> that comes
// due waits for <enabled/>. <failed/> turns stream management off for the
// stream (outConn.refused): what was kept counts as written without it,
// as on any stream without acknowledgements (the peer read it; it only
// does not count it).
type smOut struct {
	now func() time.Time
	mu  sync.Mutex
	s   *sm.Sender[Stanza]
	ask bool // a <r/> goes with the next write, whatever the policy says
	// pending: our <enable/> is not answered yet (changed under mu; read
	// without it by the reader, which alone changes it, and LinkInfo).
	// enableAt is when it was written (zero: not yet), for the keepalive:
	// an <enable/> unanswered for KeepAlive is a dead link, as an
	// unanswered <r/> is.
	pending  atomic.Bool
	enableAt time.Time
}

// newSMOut starts the count of a stream on which stream management is on:
// the reverse direction of an incoming stream, from the <enabled/> we
// wrote.
func newSMOut(m *Manager) *smOut {
	return &smOut{now: m.clock.Now, s: sm.NewSender[Stanza](sm.Policy{MaxUnacked: m.cfg.QueueLength})}
}

// newPendingSMOut starts the count of an outgoing stream whose <enable/>
// goes out with its first write. The bound is QueueLength: a link holds
// at most that many stanzas waiting, and that many more waiting for
// acknowledgement.
func newPendingSMOut(m *Manager) *smOut {
	x := newSMOut(m)
	x.pending.Store(true)
	return x
}

// on reports whether the peer enabled stream management (it counts what
// we write, and we count what it sends back on a bidi stream).
func (x *smOut) on() bool { return !x.pending.Load() }

// record keeps the stanzas of a write about to be made, and says whether
// it ends with a <r/>: one asked for (askNext), one the policy makes due
// with these n stanzas, or, when each is set, one for any batch with
// stanzas. While pending none does; what was asked waits for <enabled/>.
func (x *smOut) record(batch []Stanza, each bool) bool {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	req := false
	if !x.pending.Load() {
		req = x.ask || x.s.NeedRequestAfter(len(batch), now) || each && len(batch) > 0
		x.ask = false
	}
	x.s.WroteAll(batch, now)
	if req {
		x.s.Requested(now)
	}
	return req
}

// wroteRequest records a <r/> written on its own (the incoming stream's request
// timer and probes, smrev.go).
func (x *smOut) wroteRequest(now time.Time) {
	x.mu.Lock()
	x.s.Requested(now)
	x.mu.Unlock()
}

// write writes a batch on w with XEP-0198. The stanzas are kept until
// acknowledged, recorded before the write (the peer may answer the <r/>
// before the write returns), and what a failed write did not write is
// taken back. A <r/> the batch makes due, or that every batch with
// stanzas carries when each asks for itself, goes in the same write.
// The caller holds the stream's write lock.
func (x *smOut) write(w *wire.Writer, ctrl [][]byte, batch []Stanza, each bool) (int, error) {
	var trailer [][]byte
	if x.record(batch, each) {
		trailer = smRequest
	}
	done, err := writeBatch(w, ctrl, batch, trailer)
	if err != nil {
		x.unwrite(len(batch) - done)
	}
	return done, err
}

// enableWritten notes when <enable/> went out.
func (x *smOut) enableWritten() {
	now := x.now()
	x.mu.Lock()
	if x.enableAt.IsZero() {
		x.enableAt = now
	}
	x.mu.Unlock()
}

// enabled takes the peer's <enabled/>: the count goes on as it was
// (nothing is reset: both sides count from <enable/>), and <r/>s may go
// out. It reports false when the sender was not waiting for it, and
// whether stanzas written meanwhile, or a <r/> asked for, want a <r/>
// now (asked for the next write).
func (x *smOut) enabled() (ok, due bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.pending.Load() {
		return false, false
	}
	x.pending.Store(false)
	_, uncov := x.s.RequestDue()
	if x.ask || uncov {
		x.ask = true
		return true, true
	}
	return true, false
}

func (x *smOut) unwrite(n int) {
	x.mu.Lock()
	x.s.Unwrite(n)
	x.mu.Unlock()
}

// ack applies the peer's <a/>; one before <enabled/> acknowledges
// nothing (the peer has not enabled stream management yet).
func (x *smOut) ack(h uint32) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending.Load() {
		return nil
	}
	_, err := x.s.Ack(h, x.now(), nil)
	return err
}

// take empties the buffer: the stream is dead.
func (x *smOut) take() []Stanza {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.Take(nil)
}

// room is how many more stanzas the stream takes before the peer
// acknowledges some; holding how many it holds unacknowledged.
func (x *smOut) room() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.Room()
}

func (x *smOut) holding() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.s.Unacked()
}

// askNext asks for a <r/> with the next write (a probe, the request
// timer, a drain that waits for the last acknowledgement).
func (x *smOut) askNext() {
	x.mu.Lock()
	x.ask = true
	x.mu.Unlock()
}

// uncovered reports whether stanzas were written that no <r/> followed,
// and since when a <r/> for them is due; while pending, none is due
// (enabled asks for it).
func (x *smOut) uncovered() (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending.Load() {
		return time.Time{}, false
	}
	return x.s.RequestDue()
}

// awaiting is since when the oldest request the peer owes an answer to
// waits: a <r/>, or, while pending, our <enable/>.
func (x *smOut) awaiting() (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending.Load() {
		return x.enableAt, !x.enableAt.IsZero()
	}
	return x.s.AwaitingSince()
}

// smOf is the XEP-0198 state of the stream ls and the peer's limits; nil
// and none for a stream without.
func smOf(ls linkStream) (*smOut, peerLimits) {
	switch ls := ls.(type) {
	case *outConn:
		return ls.sm.Load(), ls.limits
	case *shareView:
		// The stream's: one count of acknowledgements and one peer
		// for every link on it.
		return ls.oc.sm.Load(), ls.oc.limits
	case *inView:
		// The incoming stream's reverse sender (smrev.go). The peer
		// opened the stream, so it announced no limits of its own
		// (XEP-0478 limits are the receiving side's features).
		if r := ls.s.rsm.Load(); r != nil {
			return r.smOut, peerLimits{}
		}
	}
	return nil, peerLimits{}
}

// startStream sets up the keepalive of the stream oc, just up, and the
// hook through which its reader reports to the link. Called with l.mu held,
// before the reader starts.
func (l *outLink) startStream(oc *outConn) {
	m := l.m
	l.probe, l.askAck, l.pingID = nil, false, ""
	l.ka = nil
	if k := m.cfg.KeepAlive; k > 0 {
		l.ka = keepalive.New(k, m.clock.Now())
		l.kaTimer = m.clock.AfterFunc(k, func() { l.keepaliveFired(oc) })
	}
	// The hook keeps the stream's own monitor: the reader needs no lock
	// per element to find it (l.ka changes only here, for a new stream,
	// whose reader has a hook of its own).
	oc.hookL, oc.hookKA = l, l.ka
}

// stopTimers ends the timers of the link's stream. Called with l.mu held.
func (l *outLink) stopTimers() {
	for _, t := range []*timer{&l.kaTimer, &l.reqTimer} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
}

// fromPeer sees each element the peer sends on oc, on the reader's
// goroutine: every one is a sign of life for ka, the stream's keepalive
// monitor (nil without one), and the XEP-0198 ones are handled here. It
// reports whether it took the element.
func (l *outLink) fromPeer(oc *outConn, ka *keepalive.Monitor, e *wire.Element) bool {
	m := l.m
	if ka != nil {
		ka.Heard(oc.heard(m))
	}
	if e.Name.Space != sm.NS {
		return false
	}
	el, err := sm.Parse(e.Raw)
	if err != nil {
		m.log.Warn("s2s: malformed stream management element", "remote", l.pair.remote, "err", err)
		return true
	}
	x := oc.sm.Load()
	switch el.Kind {
	case sm.KindEnabled, sm.KindFailed:
		l.answeredEnable(oc, x, el)
	case sm.KindAnswer:
		if x == nil {
			return true
		}
		if err := x.ack(el.H); err != nil {
			// The counts cannot be trusted: the link ends, and what is
			// unacknowledged goes to a new one.
			l.setFailWhy(fmt.Errorf("%w: %w", errSMCount, err))
			oc.close(false, err)
			return true
		}
		// Room opened, or a drain or a move onto the peer's bidi stream
		// (bidimove.go) waited for this: the owner goes on.
		l.mu.Lock()
		if l.conn == oc && (len(l.queue) > 0 || l.draining || l.moving == oc) {
			l.wakeLocked()
		}
		l.mu.Unlock()
		oc.wakeWriters() // the links piggybacked on the stream (piggyback.go)
		if m.cfg.answered != nil {
			m.cfg.answered(l.pair)
		}
	case sm.KindRequest:
		// The stanzas the peer sent back over our stream (XEP-0288,
		// counted by deliverReverse since <enabled/>); 0 on a stream
		// that is not bidirectional.
		a := sm.AppendAnswer(nil, oc.rh.Load())
		if l.writeCtrl(oc, a) != nil {
			// The owner left the stream (idle, drained) while other
			// links still write to it: one of them answers, or the
			// peer, which counts our answers, ends the stream after its
			// keepalive.
			oc.answerBySharer(a)
		}
	}
	return true
}

// answeredEnable takes the peer's answer to our <enable/>, on the reader's
// goroutine; the link has been writing since it went out (smOut says
// why). <enabled/>: the <r/> held back goes with the next write, which
// the owner makes now. <failed/>: stream management is off for the stream,
// and what it kept counts as written. Either way a link waiting for room
// or for acknowledgements (a drain) looks again.
func (l *outLink) answeredEnable(oc *outConn, x *smOut, el sm.Element) {
	m := l.m
	if x == nil || !x.pending.Load() {
		m.log.Warn("s2s: dropped an answer to an <enable/> we did not send", "remote", l.pair.remote, "element", el.Kind.String())
		return
	}
	ask := false
	if el.Kind == sm.KindEnabled {
		_, ask = x.enabled()
	} else {
		n := oc.refused(x)
		m.log.Info("s2s: the peer refused stream management", "local", l.pair.local, "remote", l.pair.remote,
			"condition", el.Condition, "written_without", n)
	}
	l.mu.Lock()
	if l.conn == oc {
		if ask {
			l.askAck = true
		}
		l.wakeLocked()
	}
	l.mu.Unlock()
	oc.wakeWriters()
}

// answerBySharer has a link still writing to the stream through its share
// write raw (our answer to the peer's <r/>) with its next batch; without
// one, the stream is closing and nothing is answered.
func (oc *outConn) answerBySharer(raw []byte) {
	oc.pmu.Lock()
	sharers := append([]*outLink(nil), oc.sharers...)
	oc.pmu.Unlock()
	for _, l := range sharers {
		l.mu.Lock()
		if v, ok := l.conn.(*shareView); ok && v.oc == oc {
			l.ctrl = append(l.ctrl, raw)
			l.wakeLocked()
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
}

// keepaliveFired checks the link's liveness: a silent link is probed, one
// that did not answer is dead (closed; the owner takes it down and what was
// not acknowledged goes to a new link).
func (l *outLink) keepaliveFired(oc *outConn) {
	m := l.m
	k := m.cfg.KeepAlive
	l.mu.Lock()
	if l.conn != oc || l.ka == nil {
		l.mu.Unlock()
		return
	}
	now := m.clock.Now()
	act, next := l.ka.Check(now)
	x := oc.sm.Load()
	if x != nil {
		// A <r/> (or our <enable/>) unanswered for KeepAlive is a dead
		// link too, whatever else the peer sends.
		if since, ok := x.awaiting(); ok && now.Sub(since) >= k {
			act = keepalive.Dead
		}
	}
	switch act {
	case keepalive.Dead:
		if l.failWhy == nil {
			l.failWhy = fmt.Errorf("%w: %s did not answer within %s", ErrKeepAlive, l.pair.remote, k)
		}
		l.kaTimer = nil
		l.mu.Unlock()
		m.log.Warn("s2s: link dead", "local", l.pair.local, "remote", l.pair.remote, "keepalive", k)
		oc.close(false, ErrKeepAlive)
		return
	case keepalive.Probe:
		if x != nil {
			// While our <enable/> waits for its answer, the <r/> goes
			// out once <enabled/> comes (or, after <failed/>, nothing
			// does: the <failed/> was the peer's sign of life).
			l.askAck = true
		} else {
			l.pingID = keepalivePrefix + newStreamID()
			l.probe = pingIQ(l.pair, l.pingID)
		}
		l.ka.Probed(now)
		l.wakeLocked()
	}
	l.kaTimer = m.clock.AfterFunc(next.Sub(now), func() { l.keepaliveFired(oc) })
	l.mu.Unlock()
	if act == keepalive.Probe && m.cfg.probed != nil {
		m.cfg.probed(l.pair)
	}
}

// armRequestTimer arms the timer that asks for a <r/> once written stanzas
// waited RequestDelay without one (the owner parks with such stanzas).
// Called with l.mu held.
func (l *outLink) armRequestTimer(oc *outConn, now time.Time) {
	if oc == nil || l.reqTimer != nil {
		return
	}
	x := oc.sm.Load()
	if x == nil {
		return
	}
	due, ok := x.uncovered()
	if !ok {
		return
	}
	l.reqTimer = l.m.clock.AfterFunc(max(due.Sub(now), 0), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.conn != oc {
			return
		}
		l.reqTimer = nil
		if _, ok := x.uncovered(); ok {
			l.askAck = true
			l.wakeLocked()
		}
	})
}

// keepalivePrefix starts the id of our keepalive pings, so that the
// incoming side tells their answers from the host's iqs at a glance.
const keepalivePrefix = "s2s-keepalive-"

// pingIQ is an XEP-0199 ping from our domain to the peer's. Its answer (a
// result, or an error from a peer without ping: either proves the link
// carried it) comes back on the peer's own stream to us.
func pingIQ(p pair, id string) []byte {
	return []byte("<iq type='get' from='" + p.local + "' to='" + p.remote + "' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// pong takes the answer to a keepalive ping, which arrived on an incoming
// stream from remote to local; false when it is not one (the host gets it).
func (m *Manager) pong(e *wire.Element, local, remote string) bool {
	if e.Name.Local != "iq" || (e.Type != "result" && e.Type != "error") || !strings.HasPrefix(e.ID, keepalivePrefix) {
		return false
	}
	l := m.outLinkFor(pair{local, remote})
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pingID == "" || l.pingID != e.ID {
		return false
	}
	l.pingID = ""
	if l.ka != nil {
		l.ka.Heard(m.clock.Now())
	}
	if m.cfg.answered != nil {
		m.cfg.answered(l.pair)
	}
	return true
}

// splitResent sorts the stanzas a dead stream took unacknowledged: those
// written for the first time go back to the queue, marked resent; those
// already resent once are bounced (a stanza that kills every stream it is
// written to would otherwise go round for ever).
func splitResent(unacked []Stanza) (again, lost []Stanza) {
	again = unacked[:0]
	for _, s := range unacked {
		if s.resent {
			lost = append(lost, s)
			continue
		}
		s.resent = true
		again = append(again, s)
	}
	return again, lost
}

// dropTooLarge bounces, each alone, the stanzas over the peer's XEP-0478
// max-bytes (written, one would end the stream and everything behind it),
// and returns the rest in order. It allocates nothing when all fit.
func (l *outLink) dropTooLarge(batch []Stanza, lim peerLimits) []Stanza {
	if lim.maxBytes <= 0 {
		return batch
	}
	// Usually all fit: find the first that does not before copying any
	// (each copy of a Stanza is a dozen words, with write barriers while
	// the collector marks).
	first := 0
	for first < len(batch) && int64(len(batch[first].Raw)) <= lim.maxBytes {
		first++
	}
	if first == len(batch) {
		return batch
	}
	keep := batch[:first]
	for _, s := range batch[first:] {
		if text, over := lim.tooLarge(s, l.pair.remote); over {
			l.m.bounce(s, tooLargeCondition, text, nil)
			continue
		}
		keep = append(keep, s)
	}
	clear(batch[len(keep):])
	return keep
}
