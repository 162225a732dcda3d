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

	"github.com/xmpp-s2s/federation/internal/wire"
)

type linkState uint8

const (
	stIdle       linkState = iota // no stream; retryAt may hold off the next attempt
	stConnecting                  // a goroutine is establishing the stream
	stUp                          // authenticated; a writer goroutine runs while there is work
)

// outLink is the outgoing link of one (local, remote) pair: its queue, its
// retry state and, while up, its stream. Stanzas move from Send to the queue
// under mu, and from the queue to the stream in the writer goroutine, which
// takes the whole queue at once and flushes once per batch.
type outLink struct {
	m    *Manager
	pair pair

	mu       sync.Mutex
	state    linkState
	removed  bool // no longer in m.out: Send must look again
	draining bool // Shutdown: write what is queued, then close
	queue    []Stanza
	ctrl     [][]byte // dialback requests for the peer, written before stanzas
	conn     *outConn // while up
	cancel   context.CancelFunc

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
	// failWhy is why fail closed the stream: down reports it instead of
	// the write or read error that closing caused.
	failWhy error

	since  time.Time
	outCnt atomic.Uint64

	// The writer goroutine runs only while there is something to do: an
	// idle up link keeps no goroutine for its writes (its stack is most of
	// what an idle link costs). writing says one runs; only it writes to
	// the stream and only it takes the link down, so a stream event that
	// needs the writer (work queued, the reader ended, the idle timer fired,
	// Shutdown) starts it when it is parked. While up, the link holds one
	// count of m.wg and m.outWG on behalf of its writers, given back by the
	// writer that takes it down.
	writing   bool
	w         *wire.Writer // the stream's coalescing writer, used by the writer goroutine
	lastWrite time.Time
	idleDue   bool  // the idle timer fired: close if nothing is queued
	idleTimer timer // while up with an IdleTimeout
}

func newOutLink(m *Manager, p pair) *outLink {
	return &outLink{m: m, pair: p}
}

// wakeLocked reports whether the caller, holding l.mu, must start a writer
// goroutine for oc (with go l.writeLoop(oc) once unlocked): the link is up
// on oc and none runs.
func (l *outLink) wakeLocked(oc *outConn) bool {
	if l.writing || l.conn != oc || oc == nil {
		return false
	}
	l.writing = true
	return true
}

// kick makes sure a writer goroutine looks at oc's link.
func (l *outLink) kick(oc *outConn) {
	l.mu.Lock()
	start := l.wakeLocked(oc)
	l.mu.Unlock()
	if start {
		go l.writeLoop(oc)
	}
}

// enqueue takes a stanza for the link. It reports false when the link was
// removed from the Manager meanwhile and the caller must look it up again.
func (l *outLink) enqueue(s Stanza) bool {
	l.mu.Lock()
	if l.removed {
		l.mu.Unlock()
		return false
	}
	switch l.state {
	case stUp, stConnecting:
		if len(l.queue) >= l.m.cfg.QueueLength {
			n := len(l.queue)
			l.mu.Unlock()
			l.m.bounce(s, stanza.ResourceConstraint,
				fmt.Sprintf("the queue to %s is full (%d stanzas waiting)", l.pair.remote, n), nil)
			return true
		}
		l.queue = append(l.queue, s)
		start := l.state == stUp && l.wakeLocked(l.conn)
		oc := l.conn
		l.mu.Unlock()
		if start {
			go l.writeLoop(oc)
		}
		return true
	}
	// Idle: wait out the retry delay, or start an attempt.
	if now := l.m.clock.Now(); now.Before(l.retryAt) {
		cond, cause := l.lastCond, l.lastCause
		text := fmt.Sprintf("%s; next attempt in %s", l.lastText, l.retryAt.Sub(now).Round(time.Millisecond))
		l.askedInWait = true
		l.mu.Unlock()
		l.m.bounce(s, cond, text, cause)
		return true
	}
	l.state = stConnecting
	l.queue = append(l.queue, s)
	l.mu.Unlock()
	// spawn takes m.mu, which is ordered before l.mu: call it unlocked.
	if !l.m.spawnOut(l.connect) {
		l.mu.Lock()
		q := l.queue
		l.queue = nil
		l.state = stIdle
		l.mu.Unlock()
		l.m.bounceAll(q, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
	}
	return true
}

// retryDelay is the wait after the n-th consecutive failure: 1 s, doubled per
// failure, capped by max_retry_delay.
func retryDelay(n int, limit time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// connect establishes the link; it runs in its own goroutine.
func (l *outLink) connect() {
	st := l.m.settings()
	// No deadline over the whole attempt: DNS, each TCP connection and
	// each target's negotiation have their own (dial.go).
	ctx, cancel := context.WithCancel(l.m.ctx)
	l.mu.Lock()
	l.cancel = cancel
	l.mu.Unlock()
	began := l.m.clock.Now()
	if !l.claimOut(ctx, st, began) {
		cancel()
		return
	}
	oc, err := l.m.dialOut(ctx, st, l.pair, true)
	cancel()
	if err != nil {
		l.connectFailed(st, err, l.m.clock.Now().Sub(began))
		return
	}
	// The up link's own counts (see writing); this goroutine holds one of
	// each, so adding cannot race a Wait that saw zero.
	l.m.wg.Add(1)
	l.m.outWG.Add(1)
	l.mu.Lock()
	l.cancel = nil
	l.state = stUp
	l.conn = oc
	l.w = wire.NewWriter(oc.conn, 0)
	l.writing = true // this goroutine writes first
	l.idleDue = false
	l.failures = 0
	l.retryAt = time.Time{}
	l.since = l.m.clock.Now()
	l.lastWrite = l.since
	if t := l.m.cfg.IdleTimeout; t > 0 {
		l.idleTimer = l.m.clock.AfterFunc(t, func() { l.idleFired(oc) })
	}
	l.mu.Unlock()
	info, _ := l.info()
	l.m.log.Info("s2s: link up", "direction", "out", "local", l.pair.local, "remote", l.pair.remote,
		"tls", info.TLS(), "cipher", info.Cipher(), "auth", info.Auth)
	l.m.observe(Event{Kind: LinkUp, Link: info, Setup: l.since.Sub(began)})
	l.m.spawnAlways(func() {
		oc.readLoop(l.m)
		l.kick(oc) // the writer takes the link down
	})
	l.writeLoop(oc)
}

// idleFired runs when the idle timer of oc's link expires: it re-arms for
// the rest of the period when the link wrote meanwhile, and otherwise has
// the writer close the link if nothing is queued.
func (l *outLink) idleFired(oc *outConn) {
	l.mu.Lock()
	if l.conn != oc {
		l.mu.Unlock()
		return
	}
	if rest := l.m.cfg.IdleTimeout - l.m.clock.Now().Sub(l.lastWrite); rest > 0 {
		l.idleTimer = l.m.clock.AfterFunc(rest, func() { l.idleFired(oc) })
		l.mu.Unlock()
		return
	}
	l.idleDue = true
	start := l.wakeLocked(oc)
	l.mu.Unlock()
	if start {
		go l.writeLoop(oc)
	}
}

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
	l.state = stIdle
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

// writeCtrl queues a dialback element for the peer of oc.
func (l *outLink) writeCtrl(oc *outConn, raw []byte) error {
	l.mu.Lock()
	if l.conn != oc {
		l.mu.Unlock()
		return fmt.Errorf("s2s: link to %s: %w", l.pair.remote, net.ErrClosed)
	}
	l.ctrl = append(l.ctrl, raw)
	start := l.wakeLocked(oc)
	l.mu.Unlock()
	if start {
		go l.writeLoop(oc)
	}
	return nil
}

// writeLoop moves queued stanzas to the stream until nothing is left to do,
// then parks: it returns with l.writing false, and the next event starts it
// again. While it runs it owns the stream's writes; it alone takes the link
// down (reader ended, idle, drained, write failed) and then gives back the
// link's counts of m.wg and m.outWG.
func (l *outLink) writeLoop(oc *outConn) {
	m := l.m
	var batch []Stanza
	var wroteAt time.Time
	for {
		select {
		case <-oc.done:
			// The peer's side ended: what is still queued goes to a new
			// attempt (down), not into a stream nobody reads.
			l.down(oc, oc.err)
			l.release()
			return
		default:
		}
		l.mu.Lock()
		if !wroteAt.IsZero() {
			l.lastWrite = wroteAt
		}
		ctrl := l.ctrl
		l.ctrl = nil
		batch, l.queue = l.queue, batch[:0]
		if len(ctrl) == 0 && len(batch) == 0 {
			var why error
			switch {
			case l.draining:
			case l.idleDue:
				why = ErrIdle
			default:
				select {
				case <-oc.done:
					// The reader ended after the check above; its kick
					// found this writer running, so this writer ends it.
					l.mu.Unlock()
					continue
				default:
				}
				// Nothing to do: park. Whoever queues work next, or sees
				// the reader end, starts a writer again.
				l.writing = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			l.closeUp(oc, why)
			l.release()
			return
		}
		l.idleDue = false // a write restarts the idle period
		w := l.w
		l.mu.Unlock()

		oc.conn.SetWriteDeadline(time.Now().Add(m.cfg.WriteTimeout))
		done, err := writeBatch(w, ctrl, batch)
		l.wrote(batch[:done])
		if err != nil {
			// What reached the connection before the error counts as
			// written; the rest is bounced, so that no stanza is both.
			err = fmt.Errorf("writing to %s: %w", l.pair.remote, err)
			m.bounceAll(batch[done:], stanza.RemoteServerTimeout,
				fmt.Sprintf("link %s to %s lost: %s", l.pair.local, l.pair.remote, publicText(err)), err)
			l.down(oc, err)
			l.release()
			return
		}
		clear(batch)
		wroteAt = m.clock.Now()
	}
}

// release gives back the counts an up link holds (see outLink.writing).
func (l *outLink) release() {
	l.m.outWG.Done()
	l.m.wg.Done()
}

// writeBatch writes the dialback elements, then the stanzas, and flushes. It
// flushes itself before the buffer would overflow, so that it knows how many
// stanzas went out whole when a write fails: done counts them.
func writeBatch(w *wire.Writer, ctrl [][]byte, batch []Stanza) (done int, err error) {
	for _, raw := range ctrl {
		if _, err := w.Write(raw); err != nil {
			return 0, err
		}
	}
	for i, s := range batch {
		if n := w.Buffered(); n > 0 && n+len(s.Raw) > wire.DefaultWriterSize {
			if err := w.Flush(); err != nil {
				return done, err
			}
			done = i
		}
		if _, err := w.Write(s.Raw); err != nil {
			return done, err
		}
		if w.Buffered() == 0 { // too large to buffer: written through
			done = i + 1
		}
	}
	if err := w.Flush(); err != nil {
		return done, err
	}
	return len(batch), nil
}

// wrote accounts for stanzas written to the link's stream.
func (l *outLink) wrote(batch []Stanza) {
	if len(batch) == 0 {
		return
	}
	l.outCnt.Add(uint64(len(batch)))
	if l.m.cfg.Observer != nil {
		info, _ := l.info()
		for _, s := range batch {
			l.m.observe(Event{Kind: StanzaOut, Link: info, Stanza: s, Bytes: len(s.Raw)})
		}
	}
}

// closeUp ends an up link cleanly: </stream:stream>, then the connection.
func (l *outLink) closeUp(oc *outConn, why error) {
	oc.conn.SetWriteDeadline(time.Now().Add(l.m.cfg.WriteTimeout))
	wire.WriteClose(oc.conn)
	l.down(oc, why)
}

// down tears the stream of an up link down. Stanzas still queued go to a new
// attempt (they were never written), unless the Manager is stopping.
func (l *outLink) down(oc *outConn, why error) {
	m := l.m
	m.mu.Lock()
	stopping := m.stopping
	l.mu.Lock()
	if l.conn != oc {
		l.mu.Unlock()
		m.mu.Unlock()
		return
	}
	l.conn = nil
	l.w = nil
	l.writing = false
	if l.failWhy != nil {
		// The link was ended on purpose (Reload's policy, a forced
		// Shutdown): that is the reason, not the closed connection.
		why, l.failWhy = l.failWhy, nil
	}
	if l.idleTimer != nil {
		l.idleTimer.Stop()
		l.idleTimer = nil
	}
	l.ctrl = nil // their Verify callers learn of the close from oc.close
	var bounce []Stanza
	switch {
	case len(l.queue) > 0 && !stopping && !l.draining && m.spawnOutLocked(l.connect):
		l.state = stConnecting
	case len(l.queue) > 0:
		bounce, l.queue = l.queue, nil
		l.state = stIdle
	default:
		l.state = stIdle
		// Nothing waits: forget the link so that idle pairs cost nothing.
		l.removed = true
		if m.out[l.pair] == l {
			delete(m.out, l.pair)
		}
	}
	since := l.since
	l.mu.Unlock()
	m.mu.Unlock()

	oc.close(why)
	info := l.infoOf(oc, since, 0)
	if why == nil || errors.Is(why, ErrIdle) || errors.Is(why, ErrPeerClosed) || errors.Is(why, ErrDenied) || errors.Is(why, ErrClosed) {
		m.log.Info("s2s: link down", "direction", "out", "local", l.pair.local, "remote", l.pair.remote, "reason", reason(why))
	} else {
		m.log.Warn("s2s: link down", "direction", "out", "local", l.pair.local, "remote", l.pair.remote, "reason", reason(why))
	}
	m.observe(Event{Kind: LinkDown, Link: info, Err: why})
	if len(bounce) > 0 {
		m.bounceAll(bounce, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
	}
}

func reason(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// fail ends the link now whatever its state, bouncing what waits with cond:
// a reload that denies the remote host, or a forced shutdown.
func (l *outLink) fail(cond stanza.Condition, text string, cause error) {
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	oc := l.conn
	cancel := l.cancel
	l.draining = true
	if oc != nil && l.failWhy == nil {
		l.failWhy = fmt.Errorf("%w: %s", cause, text)
	}
	l.mu.Unlock()
	l.m.bounceAll(q, cond, text, cause)
	if cancel != nil {
		cancel()
	}
	if oc != nil {
		// The writer goroutine sees the closed connection and takes the
		// link down; stanzas it was writing at that moment are bounced.
		oc.conn.SetWriteDeadline(time.Now().Add(l.m.cfg.WriteTimeout))
		wire.WriteClose(oc.conn)
		oc.conn.Close()
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
	oc := l.conn
	start := l.state == stUp && l.wakeLocked(oc)
	l.mu.Unlock()
	if start {
		go l.writeLoop(oc)
	}
}

// info describes the link while it is up.
func (l *outLink) info() (LinkInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != stUp || l.conn == nil {
		return LinkInfo{}, false
	}
	return l.infoOf(l.conn, l.since, len(l.queue)), true
}

// infoOf describes the link on the stream oc, up since since, with queued
// stanzas waiting.
func (l *outLink) infoOf(oc *outConn, since time.Time, queued int) LinkInfo {
	return linkInfo(Outgoing, l.pair, &oc.tls, oc.auth, since, 0, l.outCnt.Load(), queued)
}
