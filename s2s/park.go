package s2s

import (
	"crypto/tls"
	"errors"
	"net"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xmpp-s2s/federation/internal/wire"
)

// Parking a stream's reader: most links are idle most of the time, each
// with a goroutine blocked reading its connection, and that goroutine's
// stack is most of what an idle link costs beyond its TLS state. A stack
// grows while the goroutine negotiates, takes the TLS handshake and
// delivers stanzas, and the runtime halves it at a collection only while
// less than a quarter of it is in use: the ≈2.9 KiB of frames of a reader
// blocked on a TLS stream keep an 8 KiB stack at 8 KiB for good. A fresh
// goroutine that waits as a parked reader does (below) needs the 2 KiB
// minimum.
//
// The runtime starts a goroutine with a stack the size of the average
// one it saw at its last collection: right after many links were set up
// (deep handshake stacks) that is 8 KiB, and a reader parked then would
// gain nothing. So the sweep parks only while new goroutines start at 4
// KiB or less; a server collects at least every two minutes (the
// runtime's forced collection), and the readers left waiting are parked
// at the first sweep after.
//
// So, once a reader has read nothing for a whole sweep, the sweep
// interrupts its wait (wire.Reader.OnInterrupt: its read deadline is moved
// into the past, then put back), and the reader hands its loop to a new
// goroutine and returns. Nothing is lost or reordered: nothing was read,
// and the new goroutine reads on where the old one stopped. On a busy link
// the cost is nil (the sweep reads a counter per link per second); a link
// that wakes up pays one goroutine start and its stack's growth, once per
// quiet spell.
//
// The new goroutine does not wait inside the TLS read, whose ≈3 KiB of
// frames need a 4 KiB stack, but for the socket to become readable
// (waitReadable: the poller's wait, well under 1 KiB of frames), and only
// then reads; where there is no socket to wait on (rawConnOf), it waits in
// the read as before. The runtime's starting size follows the stacks it
// scans, so once most goroutines are such waits, new ones start at the 2
// KiB minimum and a parked reader costs that; one parked while they
// started larger is parked again once they start smaller (parking.stack).

// parkEvery is how often the Manager looks at its readers: one that has
// read nothing between two looks (idle for one to two periods) is parked.
const parkEvery = time.Second

// parkStack is the largest starting stack of a goroutine (see above) with
// which parking pays: the stack of a reader that has read grew to 8 KiB.
const parkStack = 4 << 10

// startingStack is the stack size the runtime gives a new goroutine.
func startingStack() uint64 {
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0 // unknown: park anyway
	}
	return s[0].Value.Uint64()
}

// past is a read deadline in the past, which wakes a blocked read at once.
var past = time.Unix(1, 0)

// parking is a stream reader as the park sweep sees it.
type parking struct {
	// wake is the interrupt request, shared by the stream's successive
	// readers (wire.Reader.OnInterrupt).
	wake atomic.Bool
	// mu orders the sweep's interrupt (wake set, then the deadline moved
	// into the past) with the reader taking it (wake cleared, then the
	// deadline put back: take), so that neither overwrites the other's
	// deadline in the wrong order, and the sweep never asks twice.
	mu    sync.Mutex
	r     *wire.Reader // the reader to watch, once it may be parked
	conn  net.Conn     // the connection r reads
	seen  uint64       // r.Reads() when the sweep last looked
	taken uint64       // 1 + r.Reads() when the reader last took a request; 0: never
	// stack is the size new goroutines started with when the reader last
	// parked, its stack's size while it waits: the sweep parks it again
	// once they start smaller (a collection lowered the figure after the
	// park, or between the sweep's check and the start).
	stack uint64
}

// watch makes r, reading conn, the reader the sweep looks at; resume puts
// conn's own read deadline back after an interrupt. Only the reading
// goroutine calls it, before it reads with r.
func (p *parking) watch(r *wire.Reader, conn net.Conn, resume func()) {
	r.OnInterrupt(&p.wake, resume)
	p.mu.Lock()
	p.r, p.conn, p.seen, p.taken = r, conn, r.Reads(), 0
	p.mu.Unlock()
}

// look is the sweep's look at the reader: it interrupts its wait when it
// has read nothing since the last look nor since it last took a request
// (or it did, but new goroutines now start with a smaller stack than its
// own: start), and it may be interrupted now (ready). A request still
// pending is made again: another goroutine may have moved the deadline
// after the sweep did (pushIdle), and the reader takes it once however
// often it is made.
func (p *parking) look(ready bool, start uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.r == nil {
		return
	}
	n := p.r.Reads()
	quiet := n == p.seen && (n+1 != p.taken || p.stack > start)
	p.seen = n
	if quiet && ready {
		p.wake.Store(true)
		p.conn.SetReadDeadline(past)
	}
}

// take is the reader's side, with p.mu held: it clears the request and
// notes when it was taken, so that the sweep leaves the reader be until it
// reads again; the caller then puts the deadline back.
func (p *parking) take() {
	p.wake.Store(false)
	p.taken = p.r.Reads() + 1
}

// parked is called by a reader that is about to start the goroutine it
// goes on with, and reports the park to the tests' hook.
func (m *Manager) parked(p *parking, in bool) {
	start := m.startingStack()
	p.mu.Lock()
	p.stack = start
	p.mu.Unlock()
	if f := m.cfg.parked; f != nil {
		f(in)
	}
}

// startingStack is the runtime's figure (startingStack), or the tests'.
func (m *Manager) startingStack() uint64 {
	if f := m.cfg.startingStack; f != nil {
		return f()
	}
	return startingStack()
}

// sweepSoon arms the sweep, unless it is armed or the Manager is closing.
// With m.mu held: a stream was added.
func (m *Manager) sweepSoon() {
	if m.sweepTimer != nil || m.closing {
		return
	}
	if d := m.cfg.sweepEvery; d > 0 {
		m.sweepTimer = realClock{}.AfterFunc(d, m.sweep)
		return
	}
	m.sweepTimer = m.clock.AfterFunc(parkEvery, m.sweep)
}

// sweep looks at every stream's reader (parking.look) and arms itself
// again while there are streams.
func (m *Manager) sweep() {
	m.mu.Lock()
	if m.closing || len(m.in) == 0 && len(m.streams) == 0 {
		m.sweepTimer = nil
		m.mu.Unlock()
		return
	}
	// The looks take each reader's lock and may move deadlines: done
	// after m.mu is let go, on lists kept from one sweep to the next (the
	// sweep runs alone: the next one is armed only below).
	ins, outs := m.sweepIn[:0], m.sweepOut[:0]
	for s := range m.in {
		ins = append(ins, s)
	}
	for oc := range m.streams {
		outs = append(outs, oc)
	}
	m.mu.Unlock()
	start := m.startingStack()
	pays := start <= parkStack
	for _, s := range ins {
		s.park.look(pays && s.parkable(), start)
	}
	for _, oc := range outs {
		oc.park.look(pays, start)
	}
	clear(ins)
	clear(outs)
	m.mu.Lock()
	m.sweepIn, m.sweepOut = ins, outs
	if m.sweepTimer != nil {
		// A test's direct call: one chain of sweeps, not two.
		m.sweepTimer.Stop()
	}
	m.sweepTimer = nil
	m.sweepSoon()
	m.mu.Unlock()
}

// stopSweep ends the sweep; with m.mu held, at Shutdown.
func (m *Manager) stopSweep() {
	if m.sweepTimer != nil {
		m.sweepTimer.Stop()
		m.sweepTimer = nil
	}
}

// parkable reports whether the stream's reader may be interrupted: once
// authenticated, when its read deadline is IdleTimeout's (readBy), which
// is what resumeDeadline puts back. Before that, the deadline is the
// negotiation's, and a stream in negotiation is not idle anyway.
func (s *inStream) parkable() bool {
	return s.is(stateAuthed) && (s.m.cfg.IdleTimeout <= 0 || s.readBy.Load() != 0)
}

// resumeDeadline puts the stream's read deadline back after an interrupt:
// IdleTimeout's, as pushIdle last moved it, or none. pushIdle runs on
// other goroutines too (a bidi stream's writes back) and moves readBy
// before the deadline: the deadline is set again until readBy holds
// still, so that an older deadline never stays in place of a newer one.
func (s *inStream) resumeDeadline() {
	p := &s.park
	p.mu.Lock()
	defer p.mu.Unlock()
	p.take()
	if s.m.cfg.IdleTimeout <= 0 {
		p.conn.SetReadDeadline(time.Time{})
		return
	}
	for {
		by := s.readBy.Load()
		p.conn.SetReadDeadline(monoBase.Add(time.Duration(by)))
		if s.readBy.Load() == by {
			return
		}
	}
}

// idle is what an outgoing stream gives up when its reader parks: the
// memory XEP-0198 kept for unacknowledged stanzas, when there are none,
// and the last stanza's from and to (as wire's parser lets go of its own).
func (oc *outConn) idle() {
	oc.domains = domainsOf{}
	if x := oc.sm.Load(); x != nil {
		x.mu.Lock()
		x.s.Release()
		x.mu.Unlock()
	}
}

// resumeDeadline puts the read deadline of an outgoing stream back after
// an interrupt: it has none (the link's idle timer and keepalive watch
// it).
func (oc *outConn) resumeDeadline() {
	p := &oc.park
	p.mu.Lock()
	p.take()
	p.conn.SetReadDeadline(time.Time{})
	p.mu.Unlock()
}

// waitParked is the wait of a parked reader reading c, before it reads
// again: on c's socket, when it has one (waitReadable).
func (m *Manager) waitParked(c net.Conn) {
	rc := rawConnOf(c)
	if f := m.cfg.waiting; f != nil {
		f(rc != nil)
	}
	if rc != nil {
		waitReadable(rc)
	}
}

// rawConnOf is the socket under c, for waitReadable: through TLS (whose
// Read waits on that socket once it has nothing left to give), and through
// any layer that offers its socket as a syscall.Conn, which says by doing
// so that it keeps no bytes of its own a wait on the socket would miss.
// nil when there is none (a pipe, a layer that does not say).
func rawConnOf(c net.Conn) syscall.RawConn {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			c = x.NetConn()
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}

// errNoSocket is a connection layer's SyscallConn error: no socket to wait
// on below it (yet).
var errNoSocket = errors.New("s2s: no socket under the connection")

// syscallConn is c's socket, for a layer of ours over c.
func syscallConn(c net.Conn) (syscall.RawConn, error) {
	if sc, ok := c.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSocket
}
