package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/keepalive"
)

// outLink is the outgoing link of one (local, remote) pair: its queue, its
// retry state and, while up, the stream it writes to.
//
// # Concurrency: one owner goroutine, a mailbox
//
// One goroutine, the link's owner (run), makes every state change: it
// connects, brings the link up, writes, closes an idle or drained stream,
// takes the link down, and bounces or retries. It runs only while the link
// has something to do and returns (parks) when it has nothing: an idle up
// link keeps no goroutine but its stream's reader, which is most of what a
// link costs when idle.
//
// Every other goroutine (Send, the stream's reader, the idle and forget
// timers, dialback verifications, Shutdown, Reload) only puts work or a
// request in the mailbox, the fields marked so below, under mu, and wakes
// the owner with wakeLocked, which is the one place an owner goroutine
// starts. The owner decides to park under mu too, so no wake is lost.
//
// Locks: mu guards the link's fields and is never held across I/O or a
// host callback. m.mu may be taken while mu is held (wakeLocked counts a new
// owner in m.outWG), never the other way round: nothing takes a link's mu
// while holding m.mu.
//
// Counts: while the owner runs or the link has a stream, the link holds one
// count of m.wg and one of m.outWG (active), so that Shutdown waits for it
// to drain; the owner gives them back when it parks with no stream.
type outLink struct {
	m    *Manager
	pair pair

	mu sync.Mutex

	// The mailbox: written by any goroutine under mu, acted on by the owner.
	queue    []Stanza
	ctrl     [][]byte // dialback elements for the peer, written before stanzas
	draining bool     // Shutdown or Reload: write what is queued, then close
	idleDue  bool     // the idle timer fired: close if nothing is queued
	// failWhy is why the link is being ended from outside (Reload's policy,
	// a forced Shutdown, a dead peer): down reports it instead of the
	// write or read error that closing caused.
	failWhy error
	// probe is a keepalive ping for the owner to write, askAck asks it for
	// an XEP-0198 <r/> (a probe, or the request timer); neither counts as
	// traffic for IdleTimeout (smout.go).
	probe  []byte
	askAck bool
	// moving is our own stream the link is leaving for the peer's bidi
	// stream (bidimove.go), moveSaid that we closed it.
	moving   *outConn
	moveSaid bool
	// stopCond, stopText and stopCause are fail's bounce, for what the
	// stream held unacknowledged when fail ended it.
	stopCond  stanza.Condition
	stopText  string
	stopCause error

	// The owner's state: changed by the owner under mu; others read it
	// under mu.
	running bool // the owner goroutine runs
	// wake is set while the running owner lingers before parking
	// (lingerFor): wakeLocked signals it.
	wake    chan struct{}
	active  bool       // the link holds its counts of m.wg and m.outWG
	removed bool       // no longer in m.out: Send must look again
	conn    linkStream // the authenticated stream while up, else nil
	cancel  context.CancelFunc

	failures int       // consecutive failed attempts
	retryAt  time.Time // no attempt before this
	// forgetTimer checks, once the retry delay has passed, whether the
	// failed link can be forgotten; askedInWait says a stanza asked for
	// the pair during the delay (forget.go).
	forgetTimer timer
	askedInWait bool
	lastCond    stanza.Condition
	lastText    string
	lastCause   error

	since     time.Time
	lastWrite time.Time
	idleTimer timer // while up with an IdleTimeout

	// The keepalive of the stream (smout.go): its monitor and timer, the
	// id of the ping waiting for its answer, and the XEP-0198 request
	// timer.
	ka       *keepalive.Monitor
	kaTimer  timer
	pingID   string
	reqTimer timer

	outCnt atomic.Uint64
	resent atomic.Uint64 // LinkInfo.StanzasResent

	// allowedBy is the settings whose policy last allowed the remote
	// host for a stanza sent on the link: Send asks the policy again only
	// when Reload replaced them (SendStanza).
	allowedBy atomic.Pointer[settings]
}

func newOutLink(m *Manager, p pair) *outLink {
	return &outLink{m: m, pair: p}
}

// wakeLocked makes sure the owner goroutine runs; the caller holds l.mu.
// It is false when the owner may not start: the link has nothing to finish
// (no stream) and the Manager is stopping.
func (l *outLink) wakeLocked() bool {
	if l.running {
		if l.wake != nil {
			// The owner lingers (lingerFor): one signal, and no more
			// until it lingers again, so the send never blocks.
			l.wake <- struct{}{}
			l.wake = nil
		}
		return true
	}
	if !l.active {
		if !l.m.holdOut() {
			return false
		}
		l.active = true
	}
	l.running = true
	go l.run() // counted by the link's hold (active)
	return true
}

// signal wakes the owner to look at the link (the stream's reader ended).
func (l *outLink) signal() {
	l.mu.Lock()
	l.wakeLocked()
	l.mu.Unlock()
}

// enqueue takes a stanza for the link. It reports false when the link was
// removed from the Manager meanwhile and the caller must look it up again.
func (l *outLink) enqueue(s Stanza) bool {
	l.mu.Lock()
	if l.removed {
		l.mu.Unlock()
		return false
	}
	if l.conn == nil && !l.retryAt.IsZero() {
		// A failed attempt holds off the next one: bounce at once.
		if now := l.m.clock.Now(); now.Before(l.retryAt) {
			cond, cause := l.lastCond, l.lastCause
			text := fmt.Sprintf("%s; next attempt in %s", l.lastText, l.retryAt.Sub(now).Round(time.Millisecond))
			l.askedInWait = true
			l.mu.Unlock()
			l.m.bounce(s, cond, text, cause)
			return true
		}
	}
	if n := len(l.queue); n >= l.m.cfg.QueueLength {
		l.mu.Unlock()
		l.m.bounce(s, stanza.ResourceConstraint,
			fmt.Sprintf("the queue to %s is full (%d stanzas waiting)", l.pair.remote, n), nil)
		return true
	}
	s.seq = l.m.seq.Add(1)
	l.queue = append(l.queue, s)
	if !l.wakeLocked() {
		q := l.queue
		l.queue = nil
		l.mu.Unlock()
		l.m.bounceAll(q, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
		return true
	}
	l.mu.Unlock()
	return true
}

// run is the owner goroutine: it does what the link's state and mailbox
// call for, one step at a time, until nothing is left; then it parks.
func (l *outLink) run() {
	var batch []Stanza
	var wroteAt time.Time
	var wake chan struct{} // lingerFor's, made at the first linger
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		l.mu.Lock()
		ls := l.conn
		if ls == nil {
			if len(l.queue) > 0 {
				// Stanzas accepted before a Shutdown began are still
				// sent: draining ends a link after its queue, and down
				// bounces what a drained link's lost stream leaves.
				l.mu.Unlock()
				l.connect()
				continue
			}
			// No stream and nothing to connect for: park and give back
			// the link's counts.
			l.running, l.active = false, false
			l.mu.Unlock()
			l.m.outWG.Done()
			l.m.wg.Done()
			return
		}
		select {
		case <-ls.ended():
			// The peer's side ended: what is still queued goes to a new
			// attempt (down), not into a stream nobody reads.
			l.mu.Unlock()
			why := ls.endErr()
			l.down(ls, errors.Is(why, ErrPeerClosed), why)
			continue
		default:
		}
		if !wroteAt.IsZero() {
			l.lastWrite, wroteAt = wroteAt, time.Time{}
		}
		x, lim := smOf(ls)
		ctrl := l.ctrl
		l.ctrl = nil
		probe := l.probe
		l.probe = nil
		askAck := l.askAck && x != nil
		l.askAck = false
		// With XEP-0198, no more than the stream has room for: at the
		// bound the rest waits for the peer's acknowledgements.
		take := len(l.queue)
		if x != nil {
			take = max(0, min(take, x.room()))
		}
		// Once our close is written, nothing more goes on the stream,
		// drain or not: what waits goes to the next stream, or is
		// bounced by a drain's down, never written after the close.
		moving := l.moving != nil && l.moving == ls && (!l.draining || l.moveSaid)
		if moving {
			take = 0 // the rest goes on the peer's stream (bidimove.go)
		}
		if take == len(l.queue) {
			batch, l.queue = l.queue, batch[:0]
		} else {
			batch = append(batch[:0], l.queue[:take]...)
			n := copy(l.queue, l.queue[take:])
			clear(l.queue[n:])
			l.queue = l.queue[:n]
		}
		if len(ctrl) == 0 && len(batch) == 0 && probe == nil && !askAck {
			var why error
			// A link at the bound, or draining with stanzas the peer
			// has not acknowledged, waits for its <a/> (which wakes
			// the owner), after asking for it.
			// (A link fail ends does not wait: stopCond is set.)
			holding := x != nil && x.holding() > 0
			waitAcks := holding && (len(l.queue) > 0 || (l.draining && l.stopCond == "") || moving)
			if waitAcks {
				if _, ok := x.uncovered(); ok {
					l.askAck = true
					l.mu.Unlock()
					continue
				}
			}
			switch {
			case moving && !holding && !l.moveSaid:
				// Everything written is acknowledged (or, without
				// XEP-0198, the peer's close will say it read it all):
				// close our stream and wait for the peer's close.
				l.moveSaid = true
				if l.failWhy == nil {
					l.failWhy = errMoved
				}
				oc := ls.(*outConn)
				l.mu.Unlock()
				oc.sayClose()
				continue
			case moving:
				why = errWait
			case waitAcks && !(l.idleDue && !l.draining):
				why = errWait
			case l.draining:
			case l.idleDue && ownsShared(ls):
				// Other links write to the stream, and its keepalive
				// is ours: stay up, parked, until the last of them
				// lets go (which wakes us: letGo, piggyback.go).
				why = errWait
			case l.idleDue:
				why = ErrIdle
			default:
				why = errWait
			}
			if why == errWait {
				// Nothing to do: park with the stream up. Whoever puts
				// work in the mailbox, an acknowledgement, a timer, or
				// the reader when it ends, wakes an owner again.
				switch ls := ls.(type) {
				case *outConn:
					l.armRequestTimer(ls, l.m.clock.Now())
				case *inView:
					ls.s.armRevRequest()
				}
				d := l.m.cfg.linger
				if d <= 0 {
					d = ownerLinger
				}
				if wake == nil {
					wake = make(chan struct{}, 1)
					linger = time.NewTimer(d)
				} else {
					linger.Reset(d)
				}
				if l.lingerFor(wake, linger) {
					continue
				}
				if x != nil {
					// Quiet for the linger: what was written and no
					// <r/> covers is asked for now, before parking, so
					// that a link that goes quiet has it acknowledged
					// within a round trip. A busy link asks in its
					// writes, at most once per round trip (sm's
					// NeedRequest): asking with every batch that
					// emptied the queue cost a <r/> and the peer's <a/>,
					// a write of its own, per batch.
					if _, ok := x.uncovered(); ok {
						l.askAck = true
						l.mu.Unlock()
						continue
					}
				}
				l.running = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			l.down(ls, true, why)
			continue
		}
		traffic := len(ctrl) > 0 || len(batch) > 0
		if traffic && l.idleDue {
			// A write restarts the idle period: the timer that fired
			// runs again from it.
			l.idleDue = false
			if t := l.m.cfg.IdleTimeout; t > 0 {
				l.idleTimer = l.m.clock.AfterFunc(t, func() { l.idleFired(ls) })
			}
		}
		l.mu.Unlock()

		batch = l.dropTooLarge(batch, lim)
		if probe != nil {
			ctrl = append(ctrl, probe)
		}
		if askAck {
			x.askNext()
		}
		// The traffic's time is read before the write: what the write
		// carries may be delivered, and the clock moved (a test's fake
		// one), before the write returns.
		began := l.m.clock.Now()
		done, err := ls.writeBatch(ctrl, batch)
		l.wrote(batch[:done])
		if err != nil {
			err = fmt.Errorf("writing to %s: %w", l.pair.remote, err)
			if x != nil {
				// Never written: back to the head of the queue, after
				// what the stream took unacknowledged (down).
				l.mu.Lock()
				l.queue = mergeSeq(append([]Stanza(nil), batch[done:]...), l.queue)
				l.mu.Unlock()
			} else {
				// What reached the connection before the error counts
				// as written; the rest is bounced, so that no stanza
				// is both.
				l.m.bounceAll(batch[done:], stanza.RemoteServerTimeout,
					fmt.Sprintf("link %s to %s lost: %s", l.pair.local, l.pair.remote, publicText(err)), err)
			}
			l.down(ls, false, err)
		} else if traffic {
			wroteAt = began
		}
		clear(batch)
	}
}

// ownerLinger is how long an owner with nothing left to do waits for more
// before it parks. A busy link's queue empties between batches, often for
// microseconds; an owner that parked at once was started again for the
// next batch, and the new goroutine grew its stack again for the TLS write
// (8% of the ping path's CPU). A link quiet for longer parks as before:
// what an idle link holds does not change.
const ownerLinger = time.Millisecond

// lingerFor waits, with l.mu held and released, until wakeLocked signals
// wake or the timer fires. It reports true, with l.mu released, when work
// came (the owner goes on), false with l.mu held when none did (the owner
// parks, under the same lock as ever, so no wake is lost).
func (l *outLink) lingerFor(wake chan struct{}, t *time.Timer) bool {
	l.wake = wake
	l.mu.Unlock()
	select {
	case <-wake:
		t.Stop()
		return true
	case <-t.C:
	}
	l.mu.Lock()
	if l.wake == nil {
		// Woken as the timer fired: the signal was sent under l.mu.
		<-wake
		l.mu.Unlock()
		return true
	}
	l.wake = nil
	return false
}

// errWait is run's note to itself that the link parks.
var errWait = errors.New("s2s: park")

// retryDelay is the wait after the n-th consecutive failure: 1 s, doubled per
// failure, capped by max_retry_delay.
func retryDelay(n int, limit time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// connect establishes the link's stream (owner only).
func (l *outLink) connect() {
	m := l.m
	st := m.settings()
	// No deadline over the whole attempt: DNS, each TCP connection and
	// each target's negotiation have their own (dial.go).
	ctx, cancel := context.WithCancel(m.ctx)
	l.mu.Lock()
	l.cancel = cancel
	l.mu.Unlock()
	began := m.clock.Now()
	if !l.claimOut(ctx, st, began) {
		cancel()
		return
	}
	// An incoming bidi stream that authenticated the reverse of our pair
	// carries it without a connection of ours (bidi.go).
	var ls linkStream
	if v := m.bidiRoute(l.pair); v != nil {
		ls = v
	} else if v := m.piggyback(ctx, st, l.pair); v != nil {
		// Or another link's stream to the same server (piggyback.go).
		ls = v
	} else {
		oc, err := m.dialOut(ctx, st, l.pair, true)
		if err != nil {
			cancel()
			l.connectFailed(st, err, m.clock.Now().Sub(began))
			return
		}
		ls = oc
	}
	cancel()
	l.mu.Lock()
	l.cancel = nil
	l.conn = ls
	l.idleDue = false
	l.failures = 0
	l.retryAt = time.Time{}
	l.since = m.clock.Now()
	l.lastWrite = l.since
	if t := m.cfg.IdleTimeout; t > 0 {
		l.idleTimer = m.clock.AfterFunc(t, func() { l.idleFired(ls) })
	}
	// A stream of ours asks for XEP-0198 with its first write, which
	// carries the first stanzas (smout.go); with none queued (they were
	// bounced meanwhile), <enable/> goes out alone, below.
	enableNow := false
	if oc, ok := ls.(*outConn); ok {
		oc.owner = l
		l.startStream(oc)
		enableNow = len(l.queue) == 0 && oc.sm.Load() != nil
	}
	info := l.infoOf(ls, l.since, len(l.queue))
	l.mu.Unlock()
	m.log.Info("s2s: link up", "direction", "out", "local", l.pair.local, "remote", l.pair.remote,
		"tls", info.TLS(), "cipher", info.Cipher(), "tls_resumed", info.TLSResumed, "auth", info.Auth)
	m.observe(Event{Kind: LinkUp, Link: info, Setup: info.Since.Sub(began)})
	for _, rev := range reverseInfos(ls, l.pair) {
		m.observe(Event{Kind: LinkUp, Link: rev, Setup: info.Since.Sub(began)})
	}
	switch ls := ls.(type) {
	case *outConn:
		m.addStream(ls) // other pairs may piggyback on it (piggyback.go)
		m.spawnAlways(func() {
			ls.readLoop(m, func() {
				m.dropStream(ls)
				l.signal() // the owner takes the link down
			})
		})
		if enableNow {
			if _, err := ls.writeBatch(nil, nil); err != nil {
				ls.close(false, err) // the reader ends, and the owner takes the link down
			}
		}
		// The peer's own stream may have come up meanwhile (both
		// servers opened their first stream at once).
		if m.bidiRoute(l.pair) != nil {
			l.considerMove()
		}
	case *inView:
		ls.attach(l) // the incoming stream's reader wakes the owner when it ends
	case *shareView:
		ls.share(l) // so does the shared stream's
	}
}

// idleFired runs when the idle timer of ls's link expires: it re-arms for
// the rest of the period when the link wrote meanwhile, and otherwise asks
// the owner to close the link if nothing is queued.
func (l *outLink) idleFired(ls linkStream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != ls {
		return
	}
	last := l.lastWrite
	if oc := outConnOf(ls); oc != nil {
		// Stanzas the peer sends back over our bidi stream keep it busy
		// too.
		if t := oc.lastRev.Load(); t != 0 && time.Unix(0, t).After(last) {
			last = time.Unix(0, t)
		}
	}
	if rest := l.m.cfg.IdleTimeout - l.m.clock.Now().Sub(last); rest > 0 {
		l.idleTimer = l.m.clock.AfterFunc(rest, func() { l.idleFired(ls) })
		return
	}
	l.idleDue = true
	l.wakeLocked()
}

// outConnOf is the outgoing stream of ours under ls, if it is one (a
// link's own, or the one its share is of); nil for an incoming stream's
// view.
func outConnOf(ls linkStream) *outConn {
	switch ls := ls.(type) {
	case *outConn:
		return ls
	case *shareView:
		return ls.oc
	}
	return nil
}

// connectFailed bounces what waited and holds off the next attempt (owner
// only).
func (l *outLink) connectFailed(st *settings, err error, took time.Duration) {
	cond := conditionFor(err)
	text := fmt.Sprintf("cannot link %s to %s: %s", l.pair.local, l.pair.remote, publicText(err))
	l.mu.Lock()
	l.cancel = nil
	l.failures++
	delay := retryDelay(l.failures, st.s2s.MaxRetryDelay)
	l.retryAt = l.m.clock.Now().Add(delay)
	l.armForget(delay)
	l.lastCond, l.lastText, l.lastCause = cond, text, err
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.m.log.Warn("s2s: link failed", "local", l.pair.local, "remote", l.pair.remote,
		"err", err, "condition", string(cond), "retry_in", delay, "bounced", len(q))
	l.m.observe(Event{Kind: LinkFailed, Link: linkInfo(Outgoing, l.pair, nil, 0, time.Time{}, 0, 0, 0), Err: err, Setup: took})
	l.m.bounceAll(q, cond, text, err)
}

// endWait ends a retry delay early: the remote domain just authenticated an
// incoming stream to us, so it is reachable again.
func (l *outLink) endWait() {
	l.mu.Lock()
	l.retryAt = time.Time{}
	l.failures = 0
	l.mu.Unlock()
}

// writeCtrl queues a dialback element for the peer of ls.
func (l *outLink) writeCtrl(ls linkStream, raw []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != ls {
		return fmt.Errorf("s2s: link to %s: %w", l.pair.remote, net.ErrClosed)
	}
	l.ctrl = append(l.ctrl, raw)
	l.wakeLocked()
	return nil
}

// wrote accounts for stanzas written to the link's stream.
func (l *outLink) wrote(batch []Stanza) {
	if len(batch) == 0 {
		return
	}
	l.outCnt.Add(uint64(len(batch)))
	resent := 0
	for i := range batch {
		if batch[i].resent {
			resent++
		}
	}
	if resent > 0 {
		l.resent.Add(uint64(resent))
	}
	if l.m.cfg.Observer != nil {
		info, _ := l.info()
		for _, s := range batch {
			l.m.observe(Event{Kind: StanzaOut, Link: info, Stanza: s, Bytes: len(s.Raw), Resent: s.resent})
		}
	}
}

// down takes the link's stream down (owner only), ending it with
// </stream:stream> when say is set (our close, or our answer to the
// peer's). Stanzas the stream took but the peer did not acknowledge, and
// those still queued, go to a new attempt (the owner's next step), unless
// the link is draining; with nothing waiting, the link leaves the Manager
// so that idle pairs cost nothing.
func (l *outLink) down(ls linkStream, say bool, why error) {
	m := l.m
	l.mu.Lock()
	if l.failWhy != nil {
		// The link was ended on purpose (Reload's policy, a forced
		// Shutdown): that is the reason, not the closed connection.
		why, l.failWhy = l.failWhy, nil
	}
	l.mu.Unlock()
	// Closed before what it holds unacknowledged is taken: a stream that
	// other links still write to lives on (piggyback.go), and keeps it
	// for the peer to acknowledge there.
	ls.close(say, why)
	// A stream shared with other pairs gives back their stanzas too:
	// those go to their own links (requeue.go), first, before any
	// callback of this link's down, so that a link of theirs that went
	// down meanwhile writes nothing of its pair before them.
	again, lost := splitResent(ls.unacked(m, l.pair, why))
	l.mu.Lock()
	l.conn = nil
	if l.idleTimer != nil {
		l.idleTimer.Stop()
		l.idleTimer = nil
	}
	l.stopTimers()
	l.moving, l.moveSaid = nil, false
	l.probe, l.askAck, l.pingID = nil, false, ""
	l.ctrl = nil // their Verify callers learn of the close from ls.close
	var bounce, dropped []Stanza
	if l.draining {
		// Not sent again: what is queued and what the stream took
		// unacknowledged are bounced, the latter as fail said when it
		// ended the link.
		bounce, l.queue = l.queue, nil
		dropped = again
	} else if len(again) > 0 {
		l.queue = mergeSeq(again, l.queue)
	}
	stopCond, stopText, stopCause := l.stopCond, l.stopText, l.stopCause
	retire := len(l.queue) == 0
	if retire {
		l.removed = true
	}
	info := l.infoOf(ls, l.since, 0)
	l.mu.Unlock()
	if retire {
		m.dropOut(l)
	}

	if why == nil || errors.Is(why, ErrIdle) || errors.Is(why, ErrPeerClosed) || errors.Is(why, ErrDenied) || errors.Is(why, ErrClosed) || errors.Is(why, errMoved) {
		m.log.Info("s2s: link down", "direction", "out", "local", l.pair.local, "remote", l.pair.remote, "reason", reason(why))
	} else {
		m.log.Warn("s2s: link down", "direction", "out", "local", l.pair.local, "remote", l.pair.remote, "reason", reason(why))
	}
	m.observe(Event{Kind: LinkDown, Link: info, Err: why})
	m.bounceLost(l.pair, lost, why)
	if len(dropped) > 0 {
		cond, text, cause := stanza.RemoteServerTimeout,
			fmt.Sprintf("link %s to %s closed before the stanza was acknowledged: %s", l.pair.local, l.pair.remote, publicText(why)), why
		if stopCond != "" {
			cond, text, cause = stopCond, stopText, stopCause
		}
		m.bounceAll(dropped, cond, text, cause)
	}
	for _, rev := range reverseInfos(ls, l.pair) {
		m.observe(Event{Kind: LinkDown, Link: rev, Err: why})
	}
	m.bounceAll(bounce, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
}

func reason(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// fail ends the link whatever its state, bouncing what waits with cond: a
// reload that denies the remote host, or (at once set) a forced shutdown.
// An attempt in progress is cancelled. A stream is closed by the owner,
// after the write it may be in, so that </stream:stream> never lands in
// the middle of a batch; at once, the connection is closed from here too,
// which ends a write the owner is stuck in.
func (l *outLink) fail(cond stanza.Condition, text string, cause error, atOnce bool) {
	why := fmt.Errorf("%w: %s", cause, text)
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	ls := l.conn
	cancel := l.cancel
	l.draining = true
	if ls != nil {
		if l.failWhy == nil {
			l.failWhy = why
		}
		l.wakeLocked()
	}
	// What the stream holds unacknowledged is bounced by down, as these.
	l.stopCond, l.stopText, l.stopCause = cond, text, cause
	l.mu.Unlock()
	l.m.bounceAll(q, cond, text, cause)
	if cancel != nil {
		cancel()
	}
	if ls != nil && atOnce {
		ls.close(true, why)
	}
}

// setFailWhy gives the reason the link is about to be failed for, before
// anything is closed (see Reload).
func (l *outLink) setFailWhy(err error) {
	l.mu.Lock()
	if l.conn != nil {
		l.failWhy = err
	}
	l.mu.Unlock()
}

// drain asks the link to write what it holds and close (Shutdown).
func (l *outLink) drain() {
	l.mu.Lock()
	l.draining = true
	if l.conn != nil {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// info describes the link while it is up.
func (l *outLink) info() (LinkInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return LinkInfo{}, false
	}
	return l.infoOf(l.conn, l.since, len(l.queue)), true
}

// infoOf describes the link on the stream ls, up since since, with queued
// stanzas waiting.
func (l *outLink) infoOf(ls linkStream, since time.Time, queued int) LinkInfo {
	state, auth := ls.security()
	info := linkInfo(Outgoing, l.pair, state, auth, since, 0, l.outCnt.Load(), queued)
	if x, _ := smOf(ls); x != nil {
		info.StreamManagement = true
		info.Unacked = x.holding()
		if v, ok := ls.(*inView); ok {
			info.Unacked = v.holding() // the stream's count is every link's on it
		}
	}
	info.StanzasResent = l.resent.Load()
	info.Stream = ls.streamID()
	return info
}
