package s2s

import (
	"fmt"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// Shared-stream requeue: what a dead stream held unacknowledged (XEP-0198)
// goes back to the link of each stanza's own pair, whichever link or
// stream gives it back.
//
// A stream may carry the stanzas of several pairs: an incoming XEP-0288
// stream carries every reverse pair authenticated on it, each an outgoing
// link writing through its own view (bidi.go), and an outgoing stream with
// piggybacked pairs carries each of them. Such a stream has one XEP-0198
// count and one buffer for all of them, since the peer acknowledges the
// stream, not a pair. When it dies, each unacknowledged stanza must be
// resent by its own pair's link (the one whose queue, retries and bounces
// the stanza belongs to), or bounced if it was resent once already:
// handing them all to the link that happened to notice the death would
// send them as that link's pair, which the peer rejects.
//
// Stanzas carry the order they were accepted in (Stanza.seq, from Send),
// so that a stanza handed back lands before every stanza of its pair that
// was accepted after it, whatever the link's owner was doing meanwhile (a
// batch it was writing when the stream died goes back to the queue too,
// from the owner, at about the same time).

// handBack gives the stanzas a dead stream took and the peer did not
// acknowledge back to their pairs' links, for why (the stream's error):
// each pair's stanzas go, in order, to the head of that pair's outgoing
// link (made again if it was retired meanwhile), marked resent and written
// once more on its next stream; one already resent is bounced
// (remote-server-timeout, "lost twice"), as is one whose link is draining,
// holding off after a failure, or cannot start because the Manager is
// stopping; those of a pair the policy now denies are bounced with
// policy-violation. It takes no lock of its caller's and may be called
// from any goroutine but a link's owner holding its mu.
//
// Any stream that several pairs share gives its unacknowledged stanzas
// back through here, once, when it is dead:
//
//   - a stream no link owns (an incoming bidi stream, whose writers are the
//     views of several links) calls it from its own end, with everything
//     its sender took, and its views' unacked return nil (inStream.end);
//   - a stream a link owns and others write to (an outConn shared by
//     piggybacked pairs, each writing through its view under one write
//     lock, its smOut the one sender of all of them) lets the first down
//     after it died, the owner's or a sharer's through its view, take the
//     whole buffer with unacked, as for a stream of its own: down keeps
//     its own pair's stanzas and passes the rest here. The buffer is
//     emptied by that take (smOut.take), so the later downs get nil and
//     each stanza is handed back exactly once whichever link goes down
//     first. A link that leaves the stream while it lives (idle, drained)
//     takes nothing (outConn.unacked, piggyback.go).
func (m *Manager) handBack(unacked []Stanza, why error) {
	if len(unacked) == 0 {
		return
	}
	// Group by pair, each group in the order the stream wrote it. A stream
	// carries few pairs: a slice beats a map here.
	type group struct {
		p pair
		q []Stanza
	}
	var groups []group
next:
	for _, s := range unacked {
		p := pairOf(s)
		for i := range groups {
			if groups[i].p == p {
				groups[i].q = append(groups[i].q, s)
				continue next
			}
		}
		groups = append(groups, group{p, []Stanza{s}})
	}
	for _, g := range groups {
		again, lost := splitResent(g.q)
		m.bounceLost(g.p, lost, why)
		if len(again) > 0 {
			m.takeBack(g.p, again, why)
		}
	}
}

// pairOf is the (local, remote) pair a stanza from Send travels on: the
// domains of its 'from' and 'to', in the form Send keyed its link with.
func pairOf(s Stanza) pair {
	local, remote := domainpart(s.From), domainpart(s.To)
	if l, err := domain.Normalize(local); err == nil {
		local = l
	}
	if r, err := domain.Normalize(remote); err == nil {
		remote = r
	}
	return pair{local, remote}
}

// takeBack puts q, stanzas of p handed back from a dead stream, at the
// head of p's link, making the link again if it left the Manager. A pair
// the current policy denies gets no link: its stanzas are bounced with
// policy-violation, as Send and Reload bounce them (a stream Reload closed
// for the policy gives back what it held after the pair's link retired).
func (m *Manager) takeBack(p pair, q []Stanza, why error) {
	m.mu.Lock()
	stopping := m.stopping
	m.mu.Unlock()
	if stopping {
		m.bounceAll(q, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
		return
	}
	// Asked with no lock held, as Send does: a host's Policy may block.
	if d := m.settings().policy.Decide(m.ctx, p.remote); !d.Allowed() {
		text := fmt.Sprintf("federation with %s is not allowed (%s)", p.remote, d)
		m.bounceAll(q, stanza.PolicyViolation, text, fmt.Errorf("%w: %s", ErrDenied, text))
		return
	}
	for {
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			m.bounceAll(q, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
			return
		}
		l := m.out[p]
		if l == nil {
			l = newOutLink(m, p)
			m.out[p] = l
		}
		m.mu.Unlock()
		if l.takeBack(q, why) {
			return
		}
		m.dropOut(l) // retired meanwhile: look again
	}
}

// takeBack is handBack's part for one link: false when the link was
// removed from the Manager and the caller must look again.
func (l *outLink) takeBack(q []Stanza, why error) bool {
	m := l.m
	l.mu.Lock()
	if l.removed {
		l.mu.Unlock()
		return false
	}
	if l.draining {
		// Shutdown or Reload: nothing is sent again, as down does with
		// what its own stream held.
		cond, text, cause := l.stopCond, l.stopText, l.stopCause
		l.mu.Unlock()
		if cond == "" {
			cond, text, cause = stanza.RemoteServerTimeout,
				fmt.Sprintf("link %s to %s closed before the stanza was acknowledged: %s", l.pair.local, l.pair.remote, publicText(why)), why
		}
		m.bounceAll(q, cond, text, cause)
		return true
	}
	if l.conn == nil && !l.retryAt.IsZero() {
		// The pair's last attempt failed and the next one waits: the
		// stanza cannot be sent again now, so it is bounced as Send
		// would bounce it.
		if now := m.clock.Now(); now.Before(l.retryAt) {
			cond, cause := l.lastCond, l.lastCause
			text := fmt.Sprintf("%s; next attempt in %s", l.lastText, l.retryAt.Sub(now).Round(time.Millisecond))
			l.askedInWait = true
			l.mu.Unlock()
			m.bounceAll(q, cond, text, cause)
			return true
		}
	}
	l.queue = mergeSeq(q, l.queue)
	if !l.wakeLocked() {
		q := l.queue
		l.queue = nil
		l.mu.Unlock()
		m.bounceAll(q, stanza.ServiceUnavailable, "the s2s service is shutting down", ErrClosed)
		return true
	}
	l.mu.Unlock()
	return true
}

// bounceLost bounces the stanzas of p that a second dead stream took
// unacknowledged.
func (m *Manager) bounceLost(p pair, q []Stanza, why error) {
	if len(q) == 0 {
		return
	}
	m.bounceAll(q, stanza.RemoteServerTimeout,
		fmt.Sprintf("link %s to %s lost twice before the stanza was acknowledged: %s", p.local, p.remote, publicText(why)), why)
}

// mergeSeq puts head, stanzas of one pair in the order they were
// accepted, back into the queue q of the same pair, also in that order:
// each lands before the stanzas accepted after it. In the usual case,
// where everything in head came before everything queued, it is one
// append.
func mergeSeq(head, q []Stanza) []Stanza {
	if len(head) == 0 {
		return q
	}
	if len(q) == 0 || head[len(head)-1].seq < q[0].seq {
		return append(head[:len(head):len(head)], q...)
	}
	out := make([]Stanza, 0, len(head)+len(q))
	i, j := 0, 0
	for i < len(head) && j < len(q) {
		if head[i].seq <= q[j].seq {
			out = append(out, head[i])
			i++
		} else {
			out = append(out, q[j])
			j++
		}
	}
	out = append(out, head[i:]...)
	return append(out, q[j:]...)
}

// partitionPair splits a stream's unacknowledged stanzas into those of p
// and the others, each in order; without others (a stream of one pair)
// it allocates nothing.
func partitionPair(all []Stanza, p pair) (mine, others []Stanza) {
	for i, s := range all {
		if !onPair(s, p) {
			mine = append(make([]Stanza, 0, len(all)), all[:i]...)
			for _, s := range all[i:] {
				if onPair(s, p) {
					mine = append(mine, s)
				} else {
					others = append(others, s)
				}
			}
			return mine, others
		}
	}
	return all, nil
}

// onPair reports whether s travels on p; the domains as written are
// compared first, which is the whole test for nearly every stanza.
func onPair(s Stanza, p pair) bool {
	if domainpart(s.From) == p.local && domainpart(s.To) == p.remote {
		return true
	}
	return pairOf(s) == p
}
