package sm

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// TestSenderAck: acknowledged stanzas leave in order; an 'h' that
// acknowledges more than was written is refused and changes nothing.
func TestSenderAck(t *testing.T) {
	s := NewSender[int](Policy{})
	for i := range 10 {
		s.Wrote(i, t0)
	}
	var done []int
	n, err := s.Ack(4, t0, func(v int) { done = append(done, v) })
	if err != nil || n != 4 || !slices.Equal(done, []int{0, 1, 2, 3}) || s.Unacked() != 6 {
		t.Fatalf("Ack(4) = %d, %v; done %v, unacked %d", n, err, done, s.Unacked())
	}
	if n, err := s.Ack(4, t0, nil); err != nil || n != 0 {
		t.Fatalf("repeated Ack(4) = %d, %v", n, err)
	}
	for _, h := range []uint32{11, 3, 1<<32 - 1} {
		if _, err := s.Ack(h, t0, nil); !errors.Is(err, ErrCountTooHigh) {
			t.Fatalf("Ack(%d) = %v, want ErrCountTooHigh", h, err)
		}
	}
	if s.Unacked() != 6 || s.Room() != DefaultMaxUnacked-6 {
		t.Fatalf("after refused acks: unacked %d, room %d", s.Unacked(), s.Room())
	}
	if got := s.Take(nil); !slices.Equal(got, []int{4, 5, 6, 7, 8, 9}) || s.Unacked() != 0 {
		t.Fatalf("Take = %v, unacked %d", got, s.Unacked())
	}
}

// TestSenderAckRuns: AckRuns acknowledges what Ack does, handing over the
// same stanzas in order, across the wrap of the ring; a count too high
// changes nothing and hands over nothing.
func TestSenderAckRuns(t *testing.T) {
	one := NewSender[int](Policy{})
	runs := NewSender[int](Policy{})
	next, h := 0, uint32(0)
	for round := range 30 {
		for range 7 + round%5 {
			one.Wrote(next, t0)
			runs.Wrote(next, t0)
			next++
		}
		h += uint32(3 + round%7)
		var a, b []int
		n1, err1 := one.Ack(h, t0, func(v int) { a = append(a, v) })
		n2, err2 := runs.AckRuns(h, t0, func(run []int) { b = append(b, run...) })
		if n1 != n2 || err1 != nil || err2 != nil || !slices.Equal(a, b) {
			t.Fatalf("round %d: Ack %d %v %v, AckRuns %d %v %v", round, n1, err1, a, n2, err2, b)
		}
	}
	if _, err := runs.AckRuns(h+uint32(runs.Unacked())+1, t0, func([]int) { t.Fatal("handed over stanzas for a count too high") }); !errors.Is(err, ErrCountTooHigh) {
		t.Fatalf("AckRuns past what was sent: %v", err)
	}
	if a, b := one.Take(nil), runs.Take(nil); !slices.Equal(a, b) {
		t.Fatalf("Take %v, after AckRuns %v", a, b)
	}
}

// TestSenderUnwrite: a batch recorded before a write that failed halfway
// is taken back from its end.
func TestSenderUnwrite(t *testing.T) {
	s := NewSender[int](Policy{})
	for i := range 5 {
		s.Wrote(i, t0)
	}
	s.Unwrite(2)
	if s.Sent() != 3 || s.Unacked() != 3 {
		t.Fatalf("after Unwrite(2): sent %d, unacked %d", s.Sent(), s.Unacked())
	}
	if _, err := s.Ack(4, t0, nil); !errors.Is(err, ErrCountTooHigh) {
		t.Fatalf("Ack(4) of 3: %v", err)
	}
	if got := s.Take(nil); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Take = %v", got)
	}
}

// TestSenderWroteAll: a batch recorded at once counts, requests and is
// acknowledged as the same stanzas recorded one by one.
func TestSenderWroteAll(t *testing.T) {
	one := NewSender[int](Policy{RequestEvery: 10})
	all := NewSender[int](Policy{RequestEvery: 10})
	next := 0
	for i, size := range []int{0, 3, 9, 1, 17, 0, 30, 5} {
		batch := make([]int, size)
		for j := range batch {
			batch[j] = next
			next++
		}
		for _, v := range batch {
			one.Wrote(v, ms(i))
		}
		all.WroteAll(batch, ms(i))
		if one.NeedRequest(ms(i)) != all.NeedRequest(ms(i)) || one.Sent() != all.Sent() || one.Unacked() != all.Unacked() {
			t.Fatalf("batch %d: one by one need %v sent %d unacked %d; at once %v %d %d", i,
				one.NeedRequest(ms(i)), one.Sent(), one.Unacked(), all.NeedRequest(ms(i)), all.Sent(), all.Unacked())
		}
		d1, ok1 := one.RequestDue()
		d2, ok2 := all.RequestDue()
		if d1 != d2 || ok1 != ok2 {
			t.Fatalf("batch %d: due %v %v, at once %v %v", i, d1, ok1, d2, ok2)
		}
		if i%3 == 2 {
			h := one.Sent() - 4
			var a, b []int
			one.Ack(h, ms(i), func(v int) { a = append(a, v) })
			all.Ack(h, ms(i), func(v int) { b = append(b, v) })
			if !slices.Equal(a, b) {
				t.Fatalf("batch %d: acknowledged %v, at once %v", i, a, b)
			}
		}
	}
	if a, b := one.Take(nil), all.Take(nil); !slices.Equal(a, b) {
		t.Fatalf("Take %v, at once %v", a, b)
	}
}

// TestSenderWraps: 'h' counts modulo 2^32 (XEP-0198 §4), on both sides.
func TestSenderWraps(t *testing.T) {
	s := NewSender[int](Policy{})
	s.sent, s.acked = 1<<32-3, 1<<32-3 // as after 2^32-3 stanzas, all acknowledged
	for i := range 6 {
		s.Wrote(i, t0)
	}
	if s.Sent() != 3 {
		t.Fatalf("sent %d after wrapping, want 3", s.Sent())
	}
	if n, err := s.Ack(1<<32-1, t0, nil); err != nil || n != 2 {
		t.Fatalf("Ack(2^32-1) = %d, %v", n, err)
	}
	if n, err := s.Ack(1, t0, nil); err != nil || n != 2 {
		t.Fatalf("Ack(1) across the wrap = %d, %v", n, err)
	}
	if _, err := s.Ack(4, t0, nil); !errors.Is(err, ErrCountTooHigh) {
		t.Fatalf("Ack(4) with 3 sent: %v", err)
	}
	if got := s.Take(nil); !slices.Equal(got, []int{4, 5}) {
		t.Fatalf("Take = %v", got)
	}
	r := Receiver{h: 1<<32 - 1}
	r.Handled()
	if r.H() != 0 || string(r.AppendAnswer(nil)) != `<a xmlns='urn:xmpp:sm:3' h='0'/>` {
		t.Fatalf("receiver after wrapping: %d", r.H())
	}
}

// TestSenderRequests: when a <r/> is due.
func TestSenderRequests(t *testing.T) {
	type step struct {
		at    int // ms
		write int // stanzas written at this time
		ack   int // -1: none; else the peer's h
		need  bool
		ask   bool // write a <r/> now (after checking need)
	}
	for i, tc := range []struct {
		p     Policy
		steps []step
	}{
		// Every 4 stanzas, once the <r/> before was answered: a busy
		// stream asks once per round trip.
		{Policy{RequestEvery: 4, RequestDelay: time.Second}, []step{
			{at: 0, write: 3, ack: -1, need: false},
			{at: 1, write: 1, ack: -1, need: true, ask: true},
			{at: 2, write: 0, ack: -1, need: false},
			{at: 3, write: 4, ack: -1, need: false}, // the <r/> of 1 ms waits for its answer
			{at: 4, write: 0, ack: 4, need: true},   // answered: the 4 written since are due
		}},
		// The delay waits for that answer too; the bound does not.
		{Policy{RequestEvery: 100, RequestDelay: 10 * time.Millisecond, MaxUnacked: 5}, []step{
			{at: 0, write: 1, ack: -1, need: false},
			{at: 10, write: 0, ack: -1, need: true, ask: true},
			{at: 11, write: 1, ack: -1, need: false},
			{at: 30, write: 0, ack: -1, need: false}, // uncovered for 19 ms, but the <r/> of 10 ms waits
			{at: 31, write: 3, ack: -1, need: true},  // at the bound: at once
		}},
		// After the delay, counted from the first write a <r/> did not cover.
		{Policy{RequestEvery: 100, RequestDelay: 10 * time.Millisecond}, []step{
			{at: 0, write: 1, ack: -1, need: false},
			{at: 5, write: 1, ack: -1, need: false},
			{at: 10, write: 0, ack: -1, need: true, ask: true},
			{at: 11, write: 0, ack: 2, need: false},
			{at: 30, write: 1, ack: -1, need: false},
			{at: 40, write: 0, ack: -1, need: true},
		}},
		// At the bound, at once.
		{Policy{RequestEvery: 100, RequestDelay: time.Second, MaxUnacked: 3}, []step{
			{at: 0, write: 2, ack: -1, need: false},
			{at: 1, write: 1, ack: -1, need: true, ask: true},
			{at: 2, write: 0, ack: 1, need: false},
		}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			s := NewSender[int](tc.p)
			for j, st := range tc.steps {
				foresaw := s.NeedRequestAfter(st.write, ms(st.at))
				for range st.write {
					s.Wrote(0, ms(st.at))
				}
				if st.ack >= 0 {
					if _, err := s.Ack(uint32(st.ack), ms(st.at), nil); err != nil {
						t.Fatal(err)
					}
				}
				if st.write > 0 {
					// What NeedRequestAfter foresaw before the writes.
					if got := foresaw; got != st.need {
						t.Fatalf("step %d: NeedRequestAfter = %v", j, got)
					}
				}
				if got := s.NeedRequest(ms(st.at)); got != st.need {
					t.Fatalf("step %d: NeedRequest = %v", j, got)
				}
				if due, ok := s.RequestDue(); ok && !st.need && s.asked == 0 && !due.After(ms(st.at)) {
					t.Fatalf("step %d: RequestDue %v is not after now", j, due)
				}
				if st.ask {
					s.Requested(ms(st.at))
				}
			}
		})
	}
}

// TestSenderAwaiting: a <r/> without an answer is how a dead link shows.
func TestSenderAwaiting(t *testing.T) {
	s := NewSender[int](Policy{})
	if _, ok := s.AwaitingSince(); ok {
		t.Fatal("awaiting before any request")
	}
	s.Wrote(1, ms(0))
	s.Requested(ms(1))
	s.Wrote(2, ms(2))
	s.Requested(ms(3))
	if since, ok := s.AwaitingSince(); !ok || !since.Equal(ms(1)) {
		t.Fatalf("AwaitingSince = %v, %v", since, ok)
	}
	// The answer to the first: the second is still out, counted from now.
	s.Ack(1, ms(5), nil)
	if since, ok := s.AwaitingSince(); !ok || !since.Equal(ms(5)) {
		t.Fatalf("after the first answer: %v, %v", since, ok)
	}
	s.Ack(2, ms(6), nil)
	if _, ok := s.AwaitingSince(); ok {
		t.Fatal("awaiting after every request was answered")
	}
	// An <a/> covering everything asked answers every <r/> at once.
	s.Wrote(3, ms(7))
	s.Requested(ms(7))
	s.Wrote(4, ms(8))
	s.Requested(ms(8))
	s.Ack(4, ms(9), nil)
	if _, ok := s.AwaitingSince(); ok {
		t.Fatal("awaiting after an answer to the last request")
	}
}

// TestSenderSteadyAllocs: once the ring has grown, writing and
// acknowledging allocate nothing (the per-stanza path of a link).
func TestSenderSteadyAllocs(t *testing.T) {
	type stanza struct{ raw []byte }
	s := NewSender[stanza](Policy{})
	v := stanza{raw: []byte("<message/>")}
	for range 200 {
		s.Wrote(v, t0)
	}
	s.Ack(200, t0, nil)
	h := uint32(200)
	n := testing.AllocsPerRun(100, func() {
		for range 64 {
			s.Wrote(v, t0)
		}
		if s.NeedRequest(t0) {
			s.Requested(t0)
		}
		h += 64
		s.Ack(h, t0, nil)
	})
	if n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}

func BenchmarkSender(b *testing.B) {
	type stanza struct{ raw []byte }
	s := NewSender[stanza](Policy{})
	v := stanza{raw: []byte("<message/>")}
	b.ReportAllocs()
	var h uint32
	for i := 0; b.Loop(); i++ {
		s.Wrote(v, t0)
		if i%64 == 63 {
			s.Requested(t0)
			h += 64
			s.Ack(h, t0, nil)
		}
	}
}

// TestSenderRelease: Release gives the ring's memory up only when nothing
// is unacknowledged, and the Sender goes on as before after it.
func TestSenderRelease(t *testing.T) {
	s := NewSender[int](Policy{})
	for i := range 20 {
		s.Wrote(i, t0)
	}
	s.Release()
	if s.unacked.buf == nil || s.Unacked() != 20 {
		t.Fatalf("released with %d unacknowledged", s.Unacked())
	}
	if _, err := s.Ack(20, t0, nil); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if s.unacked.buf != nil {
		t.Fatalf("kept a %d-slot ring with nothing unacknowledged", len(s.unacked.buf))
	}
	for i := range 3 {
		s.Wrote(20+i, t0)
	}
	var done []int
	if n, err := s.Ack(22, t0, func(v int) { done = append(done, v) }); err != nil || n != 2 || !slices.Equal(done, []int{20, 21}) {
		t.Fatalf("after Release: Ack(22) = %d, %v; done %v", n, err, done)
	}
	if got := s.Take(nil); !slices.Equal(got, []int{22}) || s.Sent() != 23 {
		t.Fatalf("Take = %v, sent %d", got, s.Sent())
	}
}
