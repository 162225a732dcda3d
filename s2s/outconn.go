package s2s

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/keepalive"
	"github.com/xmpp-s2s/federation/internal/sm"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// linkStream is an authenticated stream an outgoing link writes its
// stanzas to: the seam between a link's queue (outgoing.go) and the
// stream that carries it. A link writes to a stream of its own (an
// outConn), to an incoming XEP-0288 bidi stream (inView, bidi.go), or to
// another link's outConn on which its pair was piggybacked (shareView,
// piggyback.go); a stream with XEP-0198 keeps what it wrote until
// acknowledged. Only the link's owner goroutine calls writeBatch and
// unacked; close may come from any goroutine.
type linkStream interface {
	// writeBatch writes ctrl (dialback elements), then the stanzas, and
	// flushes; done counts the stanzas that reached the connection
	// whole.
	writeBatch(ctrl [][]byte, batch []Stanza) (done int, err error)
	// ended is closed when the stream can carry nothing more (its reader
	// stopped); endErr then says why (ErrPeerClosed for the peer's
	// </stream:stream>).
	ended() <-chan struct{}
	endErr() error
	// unacked returns, once the stream ended, the stanzas of the link's
	// pair p that it took and the peer did not acknowledge, in order, for
	// the link to put back at the head of its queue; nil on a stream
	// without stream management, where written is final. On a stream
	// shared with other pairs, their stanzas are handed back to their
	// links (Manager.handBack, for why) before it returns, and a link
	// whose stanzas another link took returns only once that hand-back is
	// done: a link that went on to a new stream before it would write its
	// pair's later stanzas ahead of the ones handed back.
	unacked(m *Manager, p pair, why error) []Stanza
	// close ends the stream: with </stream:stream> when say is set (at
	// most once on the stream, whoever asks), then the connection. Safe
	// to call more than once, from any goroutine.
	close(say bool, why error)
	// security is the stream's TLS state and how the link's pair was
	// authenticated on it, for LinkInfo.
	security() (*tls.ConnectionState, Auth)
	// streamID is the connection's LinkInfo.Stream.
	streamID() uint64
}

var _ linkStream = (*outConn)(nil)

// outConn is an outgoing stream after negotiation: the connection (TLS or
// not), its reader, and the dialback state that matches answers to requests.
type outConn struct {
	conn net.Conn
	r    *wire.Reader
	ob   *dialback.Outbound
	tls  tls.ConnectionState // zero when not encrypted
	auth Auth

	done chan struct{} // closed when the reader stops
	err  error         // why the reader stopped; set before done closes

	// bidi: we asked for a bidirectional stream (XEP-0288, bidi.go); the
	// peer may then send stanzas for the pairs in rev (From is the
	// peer's domain), each counted in its revCnt.
	bidi   bool
	rev    dialback.Pairs
	revCnt map[dialback.Pair]*atomic.Uint64 // under pmu
	since  time.Time                        // when the stream was authenticated
	sid    uint64                           // LinkInfo.Stream

	// For dialback piggybacking (piggyback.go): the pair the stream was
	// opened for and the link of that pair (owner), whether the peer does
	// dialback on it, the links writing to it (refs counts them, owner
	// included), the links sharing it, and the piggybacked requests
	// waiting for their answers.
	p        pair
	owner    *outLink
	dialback bool
	valid    dialback.Pairs // piggybacked pairs the peer accepted
	asked    atomic.Int32   // piggybacked requests made
	refs     atomic.Int32
	// leaving: its owner moves onto the peer's stream (bidimove.go);
	// closing: the stream is being closed (for all, or by the last link
	// to let go). Either way no new pair joins it (addRef).
	leaving atomic.Bool
	closing atomic.Bool
	pmu     sync.Mutex
	waits   map[dialback.Pair]chan error
	sharers []*outLink

	// writeTimeout bounds each write; w is the coalescing writer of the
	// links' batches, made on the first. wmu serialises the writes of the
	// links that share the stream (each has an owner goroutine).
	writeTimeout time.Duration
	wmu          sync.Mutex
	w            *wire.Writer
	// taken: a link took what the stream held unacknowledged (unacked);
	// under wmu, so that no batch is recorded after the take, and none is
	// taken between its record and the end of its write. back is closed
	// when the taker has handed the other pairs' stanzas back.
	taken bool
	back  chan struct{}

	said      atomic.Bool // </stream:stream> was written (or tried)
	closed    atomic.Bool // close closed the connection
	closeOnce sync.Once

	// sm is XEP-0198 on the stream, from our <enable/> (pipelined:
	// pending until the peer's answer) while the peer does not refuse
	// it: what was written and not acknowledged (smout.go). The reader
	// sets it to nil on <failed/> (refused), so everyone else loads it
	// once and works with what they loaded. enable: our <enable/> goes
	// out with the next write (under wmu).
	//
	// limits are the peer's (XEP-0478). The hook (hookL), set by the
	// link before the reader starts, sees each element the peer sends
	// first, and takes it when it returns true.
	sm     atomic.Pointer[smOut]
	enable bool
	rh     atomic.Uint32 // with sm on on a bidi stream: the peer's stanzas handled since its <enabled/> (bidi.go)
	// lastRev is when the peer last sent a stanza back over the stream
	// (UnixNano on the Manager's clock; 0 for none): IdleTimeout counts
	// both directions of a bidi stream.
	lastRev atomic.Int64
	// revLast is the reverse pair the reader last delivered for, and its
	// count (readerCount); the reader's own.
	revLast revCounter
	domains domainsOf // of the stanzas the peer sends back; the reader's own
	limits  peerLimits
	// hookL and hookKA are the hook: the link whose fromPeer sees each
	// element first, and the stream's keepalive monitor (a method and two
	// fields rather than a closure, so that the reader's Element, passed
	// by pointer, stays on its stack).
	hookL  *outLink
	hookKA *keepalive.Monitor

	// heardReads and heardAt are the reader's count of reads (r.Reads)
	// and the Manager's clock when it last read the clock for them
	// (heard); the reader goroutine's own.
	heardReads uint64
	heardAt    time.Time

	// park is the reader as the park sweep sees it (park.go).
	park parking
}

// heard is when the element the reader has just taken arrived, for the
// keepalive and the idle timer: the Manager's clock, read once per read
// from the connection rather than per element (the elements of one read
// came together). A clock read per element was 2-4% of the ping path.
// Only the reader goroutine calls it.
func (oc *outConn) heard(m *Manager) time.Time {
	if n := oc.r.Reads(); n != oc.heardReads || oc.heardAt.IsZero() {
		oc.heardReads, oc.heardAt = n, m.clock.Now()
	}
	return oc.heardAt
}

func (oc *outConn) ended() <-chan struct{} { return oc.done }
func (oc *outConn) endErr() error          { return oc.err }

// unacked gives back what the peer did not acknowledge (nil without
// XEP-0198), once the stream is dead: closed, or ended by the peer. A
// stream that lives on, because other links still write to it
// (piggyback.go), keeps it for the peer to acknowledge; whichever link
// goes down first after the stream died takes it all, keeps its own
// pair's and hands the other pairs' back to their links (Manager.handBack)
// before it returns; a link that comes after it waits for that hand-back.
//
// The take waits for a write in progress (wmu): a batch is recorded before
// its write, and what the write did not send is taken back after it and
// put back in its own link's queue by that link; taken in between, it
// would be both handed back by the taker and requeued by the writer, and
// written twice.
func (oc *outConn) unacked(m *Manager, p pair, why error) []Stanza {
	x := oc.sm.Load()
	if x == nil || !oc.dead() {
		return nil
	}
	oc.wmu.Lock()
	if oc.taken {
		back := oc.back
		oc.wmu.Unlock()
		<-back
		return nil
	}
	oc.taken = true
	oc.back = make(chan struct{})
	all := x.take()
	oc.wmu.Unlock()
	mine, others := partitionPair(all, p)
	m.handBack(others, why)
	close(oc.back)
	return mine
}

// dead reports whether the stream can carry nothing more.
func (oc *outConn) dead() bool {
	if oc.closed.Load() {
		return true
	}
	select {
	case <-oc.done:
		return true
	default:
		return false
	}
}

func (oc *outConn) security() (*tls.ConnectionState, Auth) { return &oc.tls, oc.auth }
func (oc *outConn) streamID() uint64                       { return oc.sid }

func (oc *outConn) writeBatch(ctrl [][]byte, batch []Stanza) (int, error) {
	oc.wmu.Lock()
	defer oc.wmu.Unlock()
	if oc.taken || oc.said.Load() || oc.closed.Load() {
		// Nothing more goes on a stream we closed or said we close, nor
		// into a buffer already handed back: the batch stays the
		// writer's.
		return 0, fmt.Errorf("s2s: stream to %s: %w", oc.p.remote, net.ErrClosed)
	}
	if oc.w == nil {
		oc.w = wire.NewWriter(oc.conn, 0)
	}
	oc.conn.SetWriteDeadline(time.Now().Add(oc.writeTimeout))
	x := oc.sm.Load()
	if oc.enable {
		// The first write of the stream: our <enable/> goes ahead of
		// it, and its stanzas are counted from it (smout.go).
		oc.enable = false
		if x != nil {
			x.enableWritten()
		}
		if _, err := oc.w.Write(sm.Enable); err != nil {
			return 0, err
		}
	}
	if x == nil {
		return writeBatch(oc.w, ctrl, batch, nil)
	}
	// On a stream several links write to, the <r/> one link asked for
	// its last batch (askNext) may go out with another link's write,
	// before that batch: each batch asks for itself, so that none is left
	// unacknowledged until the next probe.
	return x.write(oc.w, ctrl, batch, oc.shared())
}

// refused turns stream management off for the stream on the peer's
// <failed/> (the reader's): what x kept was written, and counts as
// written as on any stream without XEP-0198. A writer that loaded x
// before may still record a batch in it: x stays pending, so that batch
// asks for no <r/>, and nobody takes it back, so it counts as written
// too. It returns how many stanzas x kept.
func (oc *outConn) refused(x *smOut) int {
	if !oc.sm.CompareAndSwap(x, nil) {
		return 0
	}
	return len(x.take())
}

// sayClose writes </stream:stream> unless it was written already: our
// close and our answer to the peer's are the same element, and whichever
// comes first is the only one.
//
// It writes under the write lock, so that the close never lands between
// the flushes of another link's batch on a shared stream; a batch that
// comes after it is refused (writeBatch).
func (oc *outConn) sayClose() {
	oc.wmu.Lock()
	defer oc.wmu.Unlock()
	if oc.said.Swap(true) {
		return
	}
	oc.conn.SetWriteDeadline(time.Now().Add(oc.writeTimeout))
	if x := oc.sm.Load(); x != nil && x.on() && oc.bidi {
		// The last <a/> for what the peer sent back over the stream
		// (XEP-0198 §4, before closing), so that it sends none of it
		// again.
		oc.conn.Write(sm.AppendAnswer(nil, oc.rh.Load()))
	}
	wire.WriteClose(oc.conn)
}

func (oc *outConn) close(say bool, why error) {
	if !oc.letGo(why) {
		return // other links still write to it (piggyback.go)
	}
	// No link joins it from here on (addRef), though its count may not
	// be 0 (a failure closes it for all).
	oc.closing.Store(true)
	if say {
		oc.sayClose()
	}
	oc.closeOnce.Do(func() {
		oc.closed.Store(true)
		if why == nil {
			why = net.ErrClosed
		}
		oc.ob.Close(why)
		oc.conn.Close()
	})
}

// readLoop reads an up outgoing stream: dialback answers to our
// verification and piggybacked requests, the peer's close or its stream
// error, XEP-0198 elements (through the hook), and on a bidi stream
// (XEP-0288) the peer's stanzas for the reverse pairs (bidi.go). A stanza
// the stream may not carry (any stanza without bidi, another pair with
// it) and bad input end the stream with a stream error. Once the stream
// has ended, it calls then (when not nil), on whichever goroutine read
// last: a reader that parks goes on on a new one (park.go).
func (oc *outConn) readLoop(m *Manager, then func()) {
	oc.park.watch(oc.r, oc.conn, oc.resumeDeadline)
	oc.readOn(m, then)
}

// readOn is readLoop's loop, and its end.
func (oc *outConn) readOn(m *Manager, then func()) {
	var err error
	var e wire.Element
	for err == nil {
		// Wait for the peer here, not inside next: see wire's Await. A
		// wait the park sweep interrupted goes on on a new goroutine.
		if oc.r.Await() {
			oc.idle()
			m.parked(&oc.park, false)
			m.spawnAlways(func() {
				m.waitParked(oc.park.conn)
				oc.readOn(m, then)
			})
			return
		}
		if err = nextInto(oc.r, &e); err != nil {
			// Bad input (not well-formed, over our limits) is answered
			// with its stream error, as on an incoming stream.
			oc.fault(m, err)
			break
		}
		err = oc.take(m, &e)
	}
	if errors.Is(err, io.EOF) {
		// The peer closed its side; whoever ends the stream answers
		// with ours (RFC 6120 §4.4), once: the link's owner, or a
		// verification's caller.
		err = ErrPeerClosed
	}
	oc.err = err
	close(oc.done)
	oc.wakeSharers()
	if then != nil {
		then()
	}
}

// take handles one element the peer sent on the stream; an error ends
// it. It is apart from readOn, and never inlined into it, so that its
// frame is not on the stack of a reader waiting for a quiet peer (see
// wire's Await).
//
//go:noinline
func (oc *outConn) take(m *Manager, e *wire.Element) error {
	if l := oc.hookL; l != nil && l.fromPeer(oc, oc.hookKA, e) {
		return nil
	}
	if e.Name.Space == wire.NSServer && isStanzaName(e.Name.Local) {
		if err := oc.deliverReverse(m, e); err != nil {
			m.log.Warn("s2s: ended an outgoing stream for a stanza it may not carry", "from", domain.Clip(e.From), "to", domain.Clip(e.To), "err", err)
			oc.fault(m, err)
			return err
		}
		return nil
	}
	if e.Name.Space != dialback.NS {
		m.log.Warn("s2s: dropped an element on an outgoing stream", "name", e.Name.Local, "ns", e.Name.Space, "from", e.From, "to", e.To)
		return nil
	}
	el, derr := decodeDialback(*e)
	if derr != nil {
		m.log.Warn("s2s: malformed dialback element on an outgoing stream", "err", derr)
		return nil
	}
	switch el := el.(type) {
	case dialback.Verify:
		if derr := oc.ob.Deliver(el); derr != nil {
			m.log.Warn("s2s: dropped a dialback answer", "err", derr)
		}
	case dialback.Result:
		k, derr := oc.ob.Resolve(el)
		if derr == nil {
			oc.valid.Add(k.From, k.To)
			if oc.bidi {
				// Accepted: the peer may send for its reverse from
				// its next element on, before the link that asked
				// (on another goroutine) is told (piggyback.go).
				oc.addReverse(pair{k.From, k.To})
			}
		}
		if errors.Is(derr, dialback.ErrUnsolicited) || !oc.answered(k, derr) {
			m.log.Warn("s2s: dropped a dialback answer", "err", derr)
		}
	}
	return nil
}

// writeBatch writes the dialback elements, then the stanzas, then the
// trailer (an XEP-0198 <r/>), and flushes. It flushes itself before the
// buffer would overflow, so that it knows how many stanzas went out whole
// when a write fails: done counts them.
func writeBatch(w *wire.Writer, ctrl [][]byte, batch []Stanza, trailer [][]byte) (done int, err error) {
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
	for _, raw := range trailer {
		if _, err := w.Write(raw); err != nil {
			return done, err
		}
	}
	if err := w.Flush(); err != nil {
		return done, err
	}
	return len(batch), nil
}
