package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/starttls"
)

// Dialback piggybacking (XEP-0220 §4, "multiplexing"), our initiating
// side: a new (local, remote) pair first tries to authenticate with
// dialback on an outgoing stream we already have to the server that hosts
// remote, instead of opening a connection of its own. A stream qualifies
// when:
//
//   - it was opened to remote itself (a new local domain: sender
//     multiplexing, which needs nothing more), or remote resolves to a
//     target with the address and port the stream is connected to (target
//     multiplexing: the same server, by DNS or the address option);
//   - under TLS, the peer's certificate names remote (RFC 6125: DNS-ID,
//     SRV-ID or XmppAddr, as starttls.VerifyName checks), and with
//     required_trusted it also chains to our roots: what a new connection
//     to remote would have checked (XEP-0220 §4.4);
//   - the peer does dialback on it (feature or header);
//   - for a new remote domain, the server has no authenticated stream of
//     its own to us (peerStreamFrom says why).
//
// XEP-0220 asks for the peer's dialback <errors/> before target
// multiplexing; Prosody 0.12 lists dialback without it and still answers
// piggybacked requests (internal/interop pins that), so the feature alone
// is taken as enough: a peer that does not understand the request refuses
// it or says nothing within NegotiationTimeout, and the pair then opens a
// connection of its own, as it does on any refusal. The policy was asked
// for the pair by Send, as for any link, and Reload's policy fails a
// piggybacked link as any other.
//
// The pair's link then writes to the stream through a shareView. The link
// that opened the stream (its owner) keeps the stream's keepalive and
// XEP-0198 state, so it stays up, idle or not, while other links share
// the stream; the stream closes when the last link on it lets go (idle,
// drained), or at once when one fails it (a write error, Reload's policy,
// the peer, a dead keepalive), after which every link on it reconnects as
// after any lost stream. On a bidi stream the piggybacked pair's reverse
// may come back over it too.
//
// With XEP-0198 the stream has one count of acknowledgements and one
// buffer for every pair on it (the peer acknowledges the stream, not a
// pair): each link on it writes within the stream's room, the peer's <a/>
// wakes every link that waits for room or a drain, and when the stream
// dies what it held unacknowledged goes back, each stanza to its own
// pair's link, through Manager.handBack (requeue.go). A link that leaves
// a stream others still write to (idle, drained) takes nothing from it:
// its stanzas there are acknowledged on it, or handed back when it dies.

// maxPiggybacked bounds the piggybacked requests we make on one stream.
// Receiving servers bound the dialback requests of one stream (ours at
// MaxDialbackPerStream, 256 by default) and end the stream, with every
// pair on it, when one more comes; past this many a pair opens a
// connection of its own, which then carries as many again.
var maxPiggybacked int32 = 100

// shareView is a link's share of another link's outgoing stream, on which
// its pair was authenticated by piggybacked dialback.
type shareView struct {
	oc   *outConn
	pair pair
	l    *outLink // the link writing through it, once shared (under oc.pmu)

	closed atomic.Bool
}

var _ linkStream = (*shareView)(nil)

func (v *shareView) writeBatch(ctrl [][]byte, batch []Stanza) (int, error) {
	if v.closed.Load() {
		return 0, fmt.Errorf("s2s: stream to %s: %w", v.pair.remote, net.ErrClosed)
	}
	return v.oc.writeBatch(ctrl, batch)
}

func (v *shareView) ended() <-chan struct{} { return v.oc.done }
func (v *shareView) endErr() error          { return v.oc.err }
func (v *shareView) streamID() uint64       { return v.oc.sid }

// unacked is the stream's: once it is dead, the first link to go down
// takes everything it holds unacknowledged, whichever pair it is for, and
// hands the other pairs' stanzas back to their links (outLink.down).
func (v *shareView) unacked(m *Manager, p pair, why error) []Stanza { return v.oc.unacked(m, p, why) }

// close lets go of the stream, once: the last link to let go closes it,
// and a link that fails it (why neither nil nor ErrIdle) closes it for all.
func (v *shareView) close(say bool, why error) {
	if v.closed.Swap(true) {
		return
	}
	oc := v.oc
	oc.pmu.Lock()
	for i, l := range oc.sharers {
		if l == v.l {
			oc.sharers = append(oc.sharers[:i], oc.sharers[i+1:]...)
			break
		}
	}
	oc.pmu.Unlock()
	oc.close(say, why)
}

func (v *shareView) security() (*tls.ConnectionState, Auth) { return &v.oc.tls, AuthDialback }

// letGo reports whether a link closing the stream for why must close it:
// a link that is done with it (idle, drained: why nil or ErrIdle) only
// lets go while others still write to it; any other reason ends it for
// all. When the owner is left alone on it, the owner is woken: it may have
// stayed up only for the others.
func (oc *outConn) letGo(why error) bool {
	if why == nil || errors.Is(why, ErrIdle) {
		n := oc.refs.Add(-1)
		if n == 1 && oc.owner != nil {
			oc.owner.signal()
		}
		return n <= 0
	}
	return true
}

// addRef counts one more link writing to the stream, unless the stream is
// on its way out: its count fell to 0 (the last link let go and is
// closing it, writing </stream:stream> before the connection is marked
// closed), or it is closing for all, or its owner is moving off it. A
// pair joining such a stream would write into a stream we already
// closed: without XEP-0198 its stanzas would count as written and be
// lost. The count never rises from 0.
func (oc *outConn) addRef() bool {
	for {
		n := oc.refs.Load()
		if n <= 0 || oc.shut() {
			return false
		}
		if oc.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	if oc.shut() {
		// The owner began to leave as we joined (considerMove reads
		// the count after marking the stream leaving, we the mark after
		// counting ourselves: one of us sees the other). Let go again.
		oc.close(true, nil)
		return false
	}
	return true
}

// shut reports whether the stream takes no new pair (addRef).
func (oc *outConn) shut() bool { return oc.closing.Load() || oc.leaving.Load() }

// shared reports whether links other than the owner write to the stream.
func (oc *outConn) shared() bool { return oc.refs.Load() > 1 }

// answered hands the answer to a piggybacked request of ours to the link
// waiting for it; false when none waits for pair k.
func (oc *outConn) answered(k dialback.Pair, err error) bool {
	oc.pmu.Lock()
	ch, ok := oc.waits[k]
	delete(oc.waits, k)
	oc.pmu.Unlock()
	if ok {
		ch <- err // buffered
	}
	return ok
}

// wakeSharers runs when the reader ended: requests still waiting fail, and
// the links sharing the stream are woken to take themselves down.
func (oc *outConn) wakeSharers() {
	oc.pmu.Lock()
	waits, sharers := oc.waits, oc.sharers
	oc.waits, oc.sharers = nil, nil
	oc.pmu.Unlock()
	for _, ch := range waits {
		ch <- fmt.Errorf("%w: the stream ended: %w", dialback.ErrClosed, oc.err)
	}
	for _, l := range sharers {
		l.signal()
	}
}

// piggyback authenticates p on an outgoing stream of another link's, as
// the top of this file says, and returns the link's share of it; nil when
// no stream qualifies or every one that did refused.
func (m *Manager) piggyback(ctx context.Context, st *settings, p pair) *shareView {
	if m.cfg.DisablePiggyback {
		return nil
	}
	var targets []netip.AddrPort
	resolved := false
	for _, oc := range m.sharable(p) {
		if oc.p.remote != p.remote {
			if !resolved {
				targets, resolved = m.targetsOf(ctx, st, p.remote), true
			}
			if !sameTarget(oc, targets) {
				continue
			}
			if m.peerStreamFrom(oc.p.remote) || m.peerStreamFrom(p.remote) {
				m.log.Debug("s2s: not piggybacking another domain of a server that has a stream of its own to us",
					"local", p.local, "remote", p.remote, "stream_to", oc.p.remote)
				continue
			}
		}
		if err := certCovers(st, oc, p.remote); err != nil {
			m.log.Debug("s2s: not piggybacking on a stream whose certificate does not cover the domain",
				"local", p.local, "remote", p.remote, "stream_to", oc.p.remote, "err", err)
			continue
		}
		v, err := oc.piggyback(ctx, m, p)
		if err == nil {
			m.log.Info("s2s: pair authenticated on an existing stream (dialback piggybacking)",
				"local", p.local, "remote", p.remote, "stream_from", oc.p.local, "stream_to", oc.p.remote)
			return v
		}
		m.log.Info("s2s: piggybacking refused; trying elsewhere", "local", p.local, "remote", p.remote,
			"stream_to", oc.p.remote, "err", err)
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// peerStreamFrom reports whether remote has an authenticated stream of its
// own to us. A server that sends over a stream of its own rather than our
// bidi one may route the answers of another of its domains, piggybacked on
// our stream, over that stream of its own, where that domain never
// authenticated, and we would end it (invalid-from) with everything on it:
// Prosody 0.12 does so after dialback, having verified our piggybacked key
// over that stream (internal/interop, TestProsodyBidi). Towards such a
// server a new remote domain opens a stream of its own; a new local domain
// (the same remote) is not affected, its answers have no such stream to
// take.
func (m *Manager) peerStreamFrom(remote string) bool {
	m.mu.Lock()
	ins := make([]*inStream, 0, len(m.in))
	for s := range m.in {
		ins = append(ins, s)
	}
	m.mu.Unlock()
	for _, s := range ins {
		s.mu.Lock()
		for k := range s.links {
			if k.From == remote {
				s.mu.Unlock()
				return true
			}
		}
		s.mu.Unlock()
	}
	return false
}

// sharable lists the up outgoing streams of our own that may carry a
// piggybacked request: authenticated, not ended, with dialback. They are
// kept apart from the links
// (m.streams), so that a Manager with many links, or many failing ones,
// does not look through all of them for each new one.
func (m *Manager) sharable(p pair) []*outConn {
	m.mu.Lock()
	ocs := make([]*outConn, 0, len(m.streams))
	for oc := range m.streams {
		select {
		case <-oc.done:
			continue // ended; its reader is about to take it out
		default:
		}
		if oc.shut() || oc.refs.Load() <= 0 {
			continue // closing, or its owner moving off it
		}
		if oc.p != p && oc.dialback && (oc.asked.Load() < maxPiggybacked || oc.valid.Has(p.local, p.remote)) {
			ocs = append(ocs, oc)
		}
	}
	m.mu.Unlock()
	return ocs
}

// addStream makes an outgoing stream that just came up a candidate for
// piggybacking; its reader takes it out when it ends (dropStream).
func (m *Manager) addStream(oc *outConn) {
	m.mu.Lock()
	if m.streams == nil {
		m.streams = make(map[*outConn]struct{})
	}
	m.streams[oc] = struct{}{}
	m.sweepSoon()
	m.mu.Unlock()
}

func (m *Manager) dropStream(oc *outConn) {
	m.mu.Lock()
	delete(m.streams, oc)
	m.mu.Unlock()
}

// targetsOf returns the addresses remote resolves to, or none.
func (m *Manager) targetsOf(ctx context.Context, st *settings, remote string) []netip.AddrPort {
	ts, err := st.resolver.Resolve(ctx, remote)
	if err == nil {
		ts, err = usableTargets(st, remote, ts)
	}
	if err != nil {
		return nil
	}
	addrs := make([]netip.AddrPort, 0, len(ts))
	for _, t := range ts {
		addrs = append(addrs, netip.AddrPortFrom(t.Addr.Addr().Unmap(), t.Addr.Port()))
	}
	return addrs
}

// sameTarget reports whether oc is connected to one of addrs.
func sameTarget(oc *outConn, addrs []netip.AddrPort) bool {
	ta, ok := oc.conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	a := ta.AddrPort()
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	for _, t := range addrs {
		if t == a {
			return true
		}
	}
	return false
}

// certCovers checks, on an encrypted stream, that the peer's certificate
// names remote, and with required_trusted that it is trusted too: what a
// stream of remote's own would have checked.
func certCovers(st *settings, oc *outConn, remote string) error {
	if !oc.tls.HandshakeComplete {
		return nil
	}
	if st.tls.Mode == starttls.RequiredTrusted {
		return st.tls.VerifyPeer(remote, oc.tls)
	}
	if len(oc.tls.PeerCertificates) == 0 {
		return starttls.ErrNoPeerCertificate
	}
	return starttls.VerifyName(oc.tls.PeerCertificates[0], remote)
}

// piggyback asks the peer of oc to accept p with dialback, on oc, and
// waits for the answer (NegotiationTimeout at most). A pair the peer
// accepted on oc before (its link went idle and left, and now has
// stanzas again) is authenticated there still, and takes its share
// without asking again: no round trip, and no request counted against the
// peer's bound per stream.
func (oc *outConn) piggyback(ctx context.Context, m *Manager, p pair) (*shareView, error) {
	if oc.valid.Has(p.local, p.remote) {
		if !oc.addRef() {
			return nil, fmt.Errorf("%w: the stream is closing", dialback.ErrClosed)
		}
		v := &shareView{oc: oc, pair: p}
		if oc.dead() {
			v.close(false, nil)
			return nil, fmt.Errorf("%w: the stream ended", dialback.ErrClosed)
		}
		return v, nil
	}
	if oc.shut() {
		return nil, fmt.Errorf("%w: the stream is closing", dialback.ErrClosed)
	}
	if oc.asked.Add(1) > maxPiggybacked {
		return nil, fmt.Errorf("s2s: %d pairs asked for on the stream already", maxPiggybacked)
	}
	req, err := oc.ob.Request(p.local, p.remote)
	if err != nil {
		return nil, err
	}
	k := dialback.Pair{From: p.local, To: p.remote}
	ch := make(chan error, 1)
	oc.pmu.Lock()
	if oc.waits == nil {
		oc.waits = make(map[dialback.Pair]chan error)
	}
	// Counted before the request goes out, so that the stream cannot
	// close under the answer: a link that gives up lets go again.
	if !oc.addRef() {
		oc.pmu.Unlock()
		return nil, fmt.Errorf("%w: the stream is closing", dialback.ErrClosed)
	}
	oc.waits[k] = ch
	oc.pmu.Unlock()
	v := &shareView{oc: oc, pair: p}
	select {
	case <-oc.done:
		oc.answered(k, nil)
		v.close(false, nil)
		return nil, fmt.Errorf("%w: the stream ended", dialback.ErrClosed)
	default:
	}
	if _, err := oc.writeBatch([][]byte{encode(req)}, nil); err != nil {
		oc.answered(k, nil)
		v.close(false, nil)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.NegotiationTimeout)
	defer cancel()
	select {
	case err = <-ch:
	case <-ctx.Done():
		oc.answered(k, nil) // a late answer finds no one
		err = fmt.Errorf("%w: no answer to a piggybacked request within the negotiation timeout", context.DeadlineExceeded)
	}
	if err != nil {
		v.close(false, nil)
		return nil, err
	}
	// On a bidi stream the reader allowed p's reverse as it read the
	// answer (readLoop).
	return v, nil
}

// share registers l as writing to the stream through v, to be woken when
// the stream ends; if it has ended already, l is woken now.
func (v *shareView) share(l *outLink) {
	oc := v.oc
	oc.pmu.Lock()
	select {
	case <-oc.done:
		oc.pmu.Unlock()
		l.signal()
		return
	default:
	}
	v.l = l
	oc.sharers = append(oc.sharers, l)
	oc.pmu.Unlock()
}

// ownsShared reports whether ls is a stream the link opened that other
// links share. Called with the link's mu held.
func ownsShared(ls linkStream) bool {
	oc, ok := ls.(*outConn)
	return ok && oc.shared()
}

// wakeWriters wakes the links sharing the stream that wait for the peer's
// acknowledgements: room for their queue, or a drain's last <a/>. The
// owner's own wake is the caller's (fromPeer).
func (oc *outConn) wakeWriters() {
	oc.pmu.Lock()
	sharers := append([]*outLink(nil), oc.sharers...)
	oc.pmu.Unlock()
	for _, l := range sharers {
		l.mu.Lock()
		if v, ok := l.conn.(*shareView); ok && v.oc == oc && (len(l.queue) > 0 || l.draining) {
			l.wakeLocked()
		}
		l.mu.Unlock()
	}
}

// denyReverse closes, after Reload, each outgoing bidi stream of ours on
// which a domain the policy now denies may still send to us: the reverse
// of a pair piggybacked on it whose own link has left it (idle) while
// the stream lives on for others. (A denied pair whose link is on the
// stream fails it already, and its close closes the stream for all.) The
// stream's other links go down and reconnect, as after any lost stream.
func (m *Manager) denyReverse(st *settings) {
	m.mu.Lock()
	ocs := make([]*outConn, 0, len(m.streams))
	for oc := range m.streams {
		if oc.bidi {
			ocs = append(ocs, oc)
		}
	}
	m.mu.Unlock()
	for _, oc := range ocs {
		for _, p := range oc.rev.List() {
			if d := st.policy.Decide(m.ctx, p.From); !d.Allowed() {
				m.log.Info("s2s: closed an outgoing stream on which a denied domain could send", "stream_to", oc.p.remote, "denied", p.From)
				oc.close(true, fmt.Errorf("%w: federation with %s is no longer allowed (%s)", ErrDenied, p.From, d))
				break
			}
		}
	}
}
