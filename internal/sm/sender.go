package sm

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Policy.
const (
	// DefaultRequestEvery asks for an acknowledgement once per 64 stanzas
	// written, when no <r/> waits for its answer (NeedRequest): a link
	// that dies leaves unacknowledged, to be sent again, what it wrote in
	// its last round trip or two and at most this many more.
	DefaultRequestEvery = 64
	// DefaultRequestDelay asks for an acknowledgement this long after the
	// last stanza written when fewer than RequestEvery are outstanding,
	// so that a quiet link does not keep stanzas unacknowledged (and at
	// risk of being sent twice) for long.
	DefaultRequestDelay = 200 * time.Millisecond
	// DefaultMaxUnacked bounds the stanzas kept for resending: far above
	// what a link has in flight (the bandwidth-delay product of a busy
	// intercontinental link is some hundreds of stanzas), so that the
	// bound only bites when the peer stops acknowledging.
	DefaultMaxUnacked = 1000
)

// Policy says when a Sender asks for acknowledgements and how much it
// keeps. Zero fields take the defaults above.
type Policy struct {
	// RequestEvery: a <r/> is due once this many stanzas were written
	// since the last one.
	RequestEvery int
	// RequestDelay: a <r/> is due this long after a write that no <r/>
	// covered yet.
	RequestDelay time.Duration
	// MaxUnacked bounds the unacknowledged stanzas. At the bound the
	// link writes no more stanzas (Room is 0) until an <a/> makes room;
	// it never drops one. What waits meanwhile stays in the link's own
	// bounded queue.
	MaxUnacked int
}

func (p Policy) withDefaults() Policy {
	if p.RequestEvery <= 0 {
		p.RequestEvery = DefaultRequestEvery
	}
	if p.RequestDelay <= 0 {
		p.RequestDelay = DefaultRequestDelay
	}
	if p.MaxUnacked <= 0 {
		p.MaxUnacked = DefaultMaxUnacked
	}
	return p
}

// ErrCountTooHigh is wrapped when the peer acknowledges stanzas that were
// never written (or an 'h' lower than one it sent before, which modulo
// 2^32 is the same thing). XEP-0198 §4 says to end the stream with
// undefined-condition and a <handled-count-too-high/>; HandledCountTooHigh
// writes it.
var ErrCountTooHigh = errors.New("sm: the peer acknowledged more stanzas than were sent")

// Sender is the sending half of stream management on one stream: the
// count of stanzas written since <enable/> (modulo 2^32, as 'h' is), the
// peer's last acknowledged count, and the unacknowledged stanzas in the
// order they were written, of type T (the caller's stanza). The zero
// Sender is not usable: use NewSender.
//
// The per-stanza path (Wrote) appends to a ring and increments a counter:
// no allocation once the ring has grown to the link's working size, and no
// <r/> of its own; the caller asks NeedRequest once per written batch.
type Sender[T any] struct {
	p Policy

	sent     uint32 // stanzas written since <enable/>, modulo 2^32
	acked    uint32 // the peer's last 'h'
	unacked  ring[T]
	sinceReq int       // stanzas written since the last <r/>
	lastReq  uint32    // sent when the last <r/> was written
	asked    int       // <r/> written and not answered by any <a/> since
	waiting  time.Time // when the oldest of those was written; zero when none
	uncov    time.Time // when the first write not covered by a <r/> was made
}

// NewSender returns the Sender of a stream whose count starts now
// (XEP-0198 §4): the initiating entity's at its <enable/>, which the
// stanzas may follow at once, the receiving entity's at its <enabled/>.
func NewSender[T any](p Policy) *Sender[T] {
	return &Sender[T]{p: p.withDefaults()}
}

// Room is how many more stanzas may be written before the bound
// (Policy.MaxUnacked) is reached.
func (s *Sender[T]) Room() int { return s.p.MaxUnacked - s.unacked.len() }

// Unacked is the number of stanzas written and not yet acknowledged.
func (s *Sender[T]) Unacked() int { return s.unacked.len() }

// Release gives up the memory kept for unacknowledged stanzas when there
// are none: for a link that has gone quiet. A busy link keeps it (Wrote
// allocates nothing once it has grown), so call Release only when the
// link is idle.
func (s *Sender[T]) Release() { s.unacked.release() }

// Sent is the count of stanzas written since <enable/>, modulo 2^32.
func (s *Sender[T]) Sent() uint32 { return s.sent }

// Wrote records a stanza written to the stream, at now. The caller keeps
// to Room; over it, the stanza is still kept (never dropped).
func (s *Sender[T]) Wrote(v T, now time.Time) {
	s.unacked.push(v)
	s.sent++
	if s.sinceReq == 0 {
		s.uncov = now
	}
	s.sinceReq++
}

// WroteAll records the stanzas of a batch written to the stream, oldest
// first, at now: Wrote for each, in one copy.
func (s *Sender[T]) WroteAll(vs []T, now time.Time) {
	if len(vs) == 0 {
		return
	}
	s.unacked.pushAll(vs)
	s.sent += uint32(len(vs))
	if s.sinceReq == 0 {
		s.uncov = now
	}
	s.sinceReq += len(vs)
}

// Unwrite takes back the n newest stanzas recorded by Wrote, which the
// write that followed did not put on the stream after all (it failed).
// A link records a batch before writing it, since the peer may answer the
// batch's <r/> before the write returns.
func (s *Sender[T]) Unwrite(n int) {
	n = min(n, s.unacked.len())
	s.unacked.dropTail(n)
	s.sent -= uint32(n)
	s.sinceReq = max(0, s.sinceReq-n)
}

// NeedRequest reports whether a <r/> is due at now: the bound is reached
// (the link cannot write on until the peer answers), or, while no <r/>
// waits for its answer, RequestEvery stanzas were written since the last
// one or the oldest write that no <r/> covers is RequestDelay old. The
// caller writes Request and calls Requested.
//
// So a busy stream asks at most once per round trip: the answer to the
// <r/> outstanding acknowledges what was written before it within a round
// trip anyway, and one more <r/> (and the peer's <a/>, a write of its own)
// per RequestEvery stanzas would add nothing but writes. What was written
// after it is asked for with the next write after its answer.
func (s *Sender[T]) NeedRequest(now time.Time) bool {
	if s.sinceReq == 0 {
		return false
	}
	if s.Room() <= 0 {
		return true
	}
	return s.asked == 0 && (s.sinceReq >= s.p.RequestEvery || now.Sub(s.uncov) >= s.p.RequestDelay)
}

// NeedRequestAfter is NeedRequest as it will be once n more stanzas are
// written at now, so that a link can put the <r/> in the same write as
// the batch that makes it due.
func (s *Sender[T]) NeedRequestAfter(n int, now time.Time) bool {
	since := s.sinceReq + n
	if since == 0 {
		return false
	}
	uncov := s.uncov
	if s.sinceReq == 0 {
		uncov = now
	}
	if s.Room()-n <= 0 {
		return true
	}
	return s.asked == 0 && (since >= s.p.RequestEvery || now.Sub(uncov) >= s.p.RequestDelay)
}

// RequestDue is when the oldest write that no <r/> covers is RequestDelay
// old (for a timer that asks for one then, whatever NeedRequest says), and
// false when nothing written waits for a <r/>.
func (s *Sender[T]) RequestDue() (time.Time, bool) {
	if s.sinceReq == 0 {
		return time.Time{}, false
	}
	return s.uncov.Add(s.p.RequestDelay), true
}

// Requested records a <r/> written at now.
func (s *Sender[T]) Requested(now time.Time) {
	s.sinceReq = 0
	s.lastReq = s.sent
	if s.asked == 0 {
		s.waiting = now
	}
	s.asked++
}

// Covered is the count of stanzas written when the last <r/> was, and
// how many <r/> wait for an answer: an <a/> that answers the only one
// outstanding acknowledges that count, from a peer that counts every
// stanza it receives.
func (s *Sender[T]) Covered() (h uint32, asked int) { return s.lastReq, s.asked }

// AwaitingSince is when the oldest <r/> that no <a/> has followed was
// written; ok is false when every <r/> was answered. A link whose
// AwaitingSince is older than its keepalive interval is dead.
func (s *Sender[T]) AwaitingSince() (since time.Time, ok bool) {
	return s.waiting, s.asked > 0
}

// Ack applies the peer's <a h='N'/> (or the 'h' of its <failed/>) at now:
// the stanzas it acknowledges leave the buffer, oldest first, each passed
// to done when done is set, and n says how many. An 'h' that acknowledges
// more than was written wraps ErrCountTooHigh and changes nothing.
func (s *Sender[T]) Ack(h uint32, now time.Time, done func(T)) (n int, err error) {
	if n, err = s.count(h); err != nil {
		return 0, err
	}
	if done != nil {
		s.unacked.each(n, done)
	}
	s.acknowledge(h, n, now)
	return n, nil
}

// AckRuns is Ack with done given the acknowledged stanzas a run at a time:
// slices of the buffer, oldest first, valid only during the call. For a
// caller with something to do per stanza, it saves a call (and a copy of
// the stanza) each.
func (s *Sender[T]) AckRuns(h uint32, now time.Time, done func([]T)) (n int, err error) {
	if n, err = s.count(h); err != nil {
		return 0, err
	}
	s.unacked.runs(n, done)
	s.acknowledge(h, n, now)
	return n, nil
}

// count is how many stanzas the peer's 'h' acknowledges.
func (s *Sender[T]) count(h uint32) (int, error) {
	n64 := h - s.acked // modulo 2^32: how many the peer handled since its last 'h'
	if int64(n64) > int64(s.unacked.len()) {
		return 0, fmt.Errorf("%w: h=%d after h=%d, with %d sent since", ErrCountTooHigh, h, s.acked, s.unacked.len())
	}
	return int(n64), nil
}

// acknowledge drops the n stanzas 'h' acknowledged and settles the
// requests it answers.
func (s *Sender[T]) acknowledge(h uint32, n int, now time.Time) {
	s.unacked.drop(n)
	s.acked = h
	// Answers come in order: an <a/> answers at least the oldest <r/>
	// outstanding. One that covers everything asked answers all of them;
	// otherwise the rest are counted from now, which may push the dead
	// link's detection back by at most one interval while answers keep
	// coming, and answers coming mean the link is not dead.
	switch {
	case s.asked == 0:
	case h == s.lastReq || s.asked == 1:
		s.asked, s.waiting = 0, time.Time{}
	default:
		s.asked--
		s.waiting = now
	}
}

// Take empties the buffer: it appends the unacknowledged stanzas, oldest
// first, to dst and returns it. The stream they were written to is dead;
// the caller puts them back at the head of its queue, to be sent once more
// on a new stream (with a new Sender), or bounced.
func (s *Sender[T]) Take(dst []T) []T {
	n := len(dst)
	dst = append(dst, make([]T, s.unacked.len())...)
	s.unacked.copyTo(dst[n:])
	s.unacked.drop(s.unacked.len())
	return dst
}

// HandledCountTooHigh appends the content XEP-0198 §4 gives the
// undefined-condition stream error when the peer's 'h' is too high: the
// caller puts it inside <stream:error> after the condition.
func (s *Sender[T]) HandledCountTooHigh(dst []byte, h uint32) []byte {
	dst = append(dst, "<handled-count-too-high xmlns='"+NS+"' h='"...)
	dst = appendUint(dst, h)
	dst = append(dst, "' send-count='"...)
	dst = appendUint(dst, s.sent)
	return append(dst, "'/>"...)
}

// Receiver is the receiving half of stream management on one stream: the
// count of stanzas handled since <enabled/> was written (or, on the
// initiating side, since <enable/>), modulo 2^32. The zero Receiver counts
// from zero.
type Receiver struct {
	h uint32
}

// Handled counts a stanza handled (delivered to the host).
func (r *Receiver) Handled() { r.h++ }

// H is the count to send in <a h='N'/>.
func (r *Receiver) H() uint32 { return r.h }

// AppendAnswer appends the <a/> that answers a <r/>.
func (r *Receiver) AppendAnswer(dst []byte) []byte { return AppendAnswer(dst, r.h) }
