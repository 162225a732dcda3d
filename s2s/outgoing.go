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
	stUp                          // authenticated; the writer goroutine runs
)

// errIdle closes a link nobody used for Config.IdleTimeout.
var errIdle = errors.New("s2s: link idle")

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

	failures  int       // consecutive failed attempts
	retryAt   time.Time // no attempt before this
	lastCond  stanza.Condition
	lastText  string
	lastCause error

	since  time.Time
	wake   chan struct{}
	outCnt atomic.Uint64
}

func newOutLink(m *Manager, p pair) *outLink {
	return &outLink{m: m, pair: p, wake: make(chan struct{}, 1)}
}

func (l *outLink) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
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
		up := l.state == stUp
		l.mu.Unlock()
		if up {
			l.signal()
		}
		return true
	}
	// Idle: wait out the retry delay, or start an attempt.
	if now := l.m.clock.Now(); now.Before(l.retryAt) {
		cond, cause := l.lastCond, l.lastCause
		text := fmt.Sprintf("%s; next attempt in %s", l.lastText, l.retryAt.Sub(now).Round(time.Millisecond))
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
	ctx, cancel := l.m.ctx, context.CancelFunc(nil)
	if t := st.s2s.Outgoing.ConnectionTimeout; t > 0 {
		ctx, cancel = context.WithTimeout(ctx, t)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	l.mu.Lock()
	l.cancel = cancel
	l.mu.Unlock()
	oc, err := l.m.dialOut(ctx, st, l.pair, true)
	cancel()
	if err != nil {
		l.connectFailed(st, err)
		return
	}
	l.mu.Lock()
	l.cancel = nil
	l.state = stUp
	l.conn = oc
	l.failures = 0
	l.retryAt = time.Time{}
	l.since = l.m.clock.Now()
	l.mu.Unlock()
	info, _ := l.info()
	l.m.log.Info("s2s: link up", "direction", "out", "local", l.pair.local, "remote", l.pair.remote,
		"tls", info.TLS(), "cipher", info.Cipher(), "auth", info.Auth)
	l.m.observe(Event{Kind: LinkUp, Link: info})
	l.m.spawnAlways(func() { oc.readLoop(l.m) })
	l.writeLoop(oc)
}

func (l *outLink) connectFailed(st *settings, err error) {
	cond := conditionFor(err)
	text := fmt.Sprintf("cannot link %s to %s: %v", l.pair.local, l.pair.remote, err)
	l.mu.Lock()
	l.cancel = nil
	l.failures++
	delay := retryDelay(l.failures, st.s2s.MaxRetryDelay)
	l.retryAt = l.m.clock.Now().Add(delay)
	l.lastCond, l.lastText, l.lastCause = cond, text, err
	l.state = stIdle
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	l.m.log.Warn("s2s: link failed", "local", l.pair.local, "remote", l.pair.remote,
		"err", err, "condition", string(cond), "retry_in", delay, "bounced", len(q))
	l.m.observe(Event{Kind: AuthFailed, Link: LinkInfo{Direction: Outgoing, Local: l.pair.local, Remote: l.pair.remote}, Err: err})
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
	l.mu.Unlock()
	l.signal()
	return nil
}

// writeLoop moves queued stanzas to the stream until the link ends. It owns
// the stream's writes.
func (l *outLink) writeLoop(oc *outConn) {
	m := l.m
	w := wire.NewWriter(oc.conn, 0)
	var idle <-chan struct{}
	var idleTimer timer
	last := m.clock.Now()
	armIdle := func(d time.Duration) {
		ch := make(chan struct{})
		idle = ch
		idleTimer = m.clock.AfterFunc(d, func() { close(ch) })
	}
	if m.cfg.IdleTimeout > 0 {
		armIdle(m.cfg.IdleTimeout)
	}
	defer func() {
		if idleTimer != nil {
			idleTimer.Stop()
		}
	}()
	var batch []Stanza
	l.signal() // stanzas queued while connecting go out first
	for {
		select {
		case <-l.wake:
		case <-oc.done:
		case <-idle:
			if rest := m.cfg.IdleTimeout - m.clock.Now().Sub(last); rest > 0 {
				armIdle(rest)
				continue
			}
			l.mu.Lock()
			empty := len(l.queue) == 0 && len(l.ctrl) == 0
			l.mu.Unlock()
			if empty {
				l.closeUp(oc, w, errIdle)
				return
			}
		}
		l.mu.Lock()
		ctrl := l.ctrl
		l.ctrl = nil
		batch, l.queue = l.queue, batch[:0]
		draining := l.draining
		l.mu.Unlock()

		if len(ctrl) > 0 || len(batch) > 0 {
			oc.conn.SetWriteDeadline(time.Now().Add(m.cfg.WriteTimeout))
			done, err := writeBatch(w, ctrl, batch)
			l.wrote(batch[:done])
			if err != nil {
				// What reached the connection before the error counts as
				// written; the rest is bounced, so that no stanza is both.
				err = fmt.Errorf("writing to %s: %w", l.pair.remote, err)
				m.bounceAll(batch[done:], stanza.RemoteServerTimeout,
					fmt.Sprintf("link %s to %s lost: %v", l.pair.local, l.pair.remote, err), err)
				l.down(oc, err)
				return
			}
			clear(batch)
			last = m.clock.Now()
		}
		select {
		case <-oc.done:
			l.down(oc, oc.err)
			return
		default:
		}
		if draining {
			l.mu.Lock()
			empty := len(l.queue) == 0
			l.mu.Unlock()
			if empty {
				l.closeUp(oc, w, nil)
				return
			}
		}
	}
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
func (l *outLink) closeUp(oc *outConn, w *wire.Writer, why error) {
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
	info := LinkInfo{Direction: Outgoing, Local: l.pair.local, Remote: l.pair.remote,
		TLSVersion: oc.tls.Version, CipherSuite: oc.tls.CipherSuite, Auth: oc.auth, Since: since,
		StanzasOut: l.outCnt.Load()}
	if why == nil || errors.Is(why, errIdle) || errors.Is(why, ErrPeerClosed) {
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

// drain asks the link to write what it holds and close (Shutdown).
func (l *outLink) drain() {
	l.mu.Lock()
	l.draining = true
	l.mu.Unlock()
	l.signal()
}

// info describes the link while it is up.
func (l *outLink) info() (LinkInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != stUp || l.conn == nil {
		return LinkInfo{}, false
	}
	oc := l.conn
	return LinkInfo{
		Direction:   Outgoing,
		Local:       l.pair.local,
		Remote:      l.pair.remote,
		TLSVersion:  oc.tls.Version,
		CipherSuite: oc.tls.CipherSuite,
		Auth:        oc.auth,
		Since:       l.since,
		StanzasOut:  l.outCnt.Load(),
	}, true
}
