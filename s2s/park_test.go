package s2s

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/sm"
)

// parks records the parks of a node's readers (park.go), by side, and
// for each parked reader's wait whether it waits on a socket.
type parks struct {
	in, out chan struct{}
	sockets chan bool
}

// withParks makes the node's sweep park whatever is quiet (as if new
// goroutines started small: the runtime's figure depends on the whole
// test binary) and report each park to p.
func withParks(p *parks) nodeOpt {
	return withConfig(func(c *Config) {
		c.startingStack = func() uint64 { return 0 }
		c.parked = func(in bool) {
			if in {
				p.in <- struct{}{}
			} else {
				p.out <- struct{}{}
			}
		}
		c.waiting = func(socket bool) {
			select {
			case p.sockets <- socket:
			default:
			}
		}
	})
}

func newParks() *parks {
	return &parks{in: make(chan struct{}, 100), out: make(chan struct{}, 100), sockets: make(chan bool, 100)}
}

// park runs n's sweep twice (the first look notes what each reader has
// read, the second interrupts those that read nothing since) and waits
// for a park on ch.
func park(t *testing.T, n *node, ch chan struct{}, what string) {
	t.Helper()
	n.m.sweep()
	n.m.sweep()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("%s: the reader did not park", what)
	}
}

// parkingPair is pairNodes in TLS mode mode, both nodes on one fake clock
// and their parks reported to pa and pb.
func parkingPair(t *testing.T, mode string) (a, b *node, pa, pb *parks) {
	t.Helper()
	clk := newFakeClock()
	pa, pb = newParks(), newParks()
	a, b = pairNodes(t,
		[]nodeOpt{withMode(mode), withParks(pa), withConfig(func(c *Config) { c.clock = clk })},
		[]nodeOpt{withMode(mode), withParks(pb), withConfig(func(c *Config) { c.clock = clk })})
	return a, b, pa, pb
}

// noPark checks that no park is pending on ch.
func noPark(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: a reader parked again without reading", what)
	default:
	}
}

// TestParkedLinkDelivers: the readers of a quiet link, both ends, hand
// their loops to new goroutines; the link then carries stanzas both ways
// as before, with XEP-0198 acknowledgements read by the parked outgoing
// reader; a reader that read nothing since it parked is left alone, one
// that read again parks again; and Shutdown ends the parked goroutines
// (the node's clean-up fails on a goroutine left).
func TestParkedLinkDelivers(t *testing.T) {
	for _, mode := range []string{"false", "required"} {
		t.Run("tls="+mode, func(t *testing.T) {
			a, b, pa, pb := parkingPair(t, mode)
			a.send(msgAB)
			b.nextDelivered()
			waitAcked(t, a)
			park(t, a, pa.out, "a's outgoing reader")
			park(t, b, pb.in, "b's incoming reader")
			a.m.sweep()
			b.m.sweep()
			noPark(t, pa.out, "a")
			noPark(t, pb.in, "b")
			for i := range 3 {
				a.send(msgAB)
				if got := b.nextDelivered(); got.ID != "m1" {
					t.Fatalf("round %d: delivered %+v", i, got)
				}
				waitAcked(t, a)
				// The reverse direction, over the same stream (bidi)
				// or b's own link.
				b.send(msgBA)
				a.nextDelivered()
				waitAcked(t, b)
				park(t, a, pa.out, "a's outgoing reader, again")
				park(t, b, pb.in, "b's incoming reader, again")
			}
			if l := a.m.Links(); len(outgoing(l)) != 1 {
				t.Fatalf("a's links %+v", l)
			}
		})
	}
}

// TestParkedReadersWaitOnSocket: the parked readers of a link, both ends,
// wait for their sockets (waitParked), through TLS, the keepalive
// monitor's layer and MaxIncoming's, not in a read; a stanza each way then
// wakes them and is delivered, and they park on their sockets again.
func TestParkedReadersWaitOnSocket(t *testing.T) {
	for _, mode := range []string{"false", "required"} {
		t.Run("tls="+mode, func(t *testing.T) {
			a, b, pa, pb := parkingPair(t, mode)
			if b.m.cfg.MaxIncoming <= 0 {
				t.Fatalf("MaxIncoming %d: the bound's layer is not tested", b.m.cfg.MaxIncoming)
			}
			onSocket := func(p *parks, what string) {
				t.Helper()
				select {
				case s := <-p.sockets:
					if !s {
						t.Fatalf("%s: the parked reader found no socket to wait on", what)
					}
				case <-time.After(wait):
					t.Fatalf("%s: the parked reader did not wait", what)
				}
			}
			a.send(msgAB)
			b.nextDelivered()
			waitAcked(t, a)
			for i := range 2 {
				park(t, a, pa.out, "a's outgoing reader")
				onSocket(pa, "a")
				park(t, b, pb.in, "b's incoming reader")
				onSocket(pb, "b")
				a.send(msgAB)
				if got := b.nextDelivered(); got.ID != "m1" {
					t.Fatalf("round %d: delivered %+v", i, got)
				}
				waitAcked(t, a)
				b.send(msgBA)
				a.nextDelivered()
				waitAcked(t, b)
			}
		})
	}
}

// TestParkedIncomingIdles: a parked incoming reader still has its
// IdleTimeout deadline (the interrupt's deadline in the past is not left,
// nor none put in its place): the stream closes for idleness, with
// ErrIdle, and not before.
func TestParkedIncomingIdles(t *testing.T) {
	ps := newParks()
	const idle = 2 * time.Second
	b := authorityFor(t, []string{"x.test"}, withParks(ps), withConfig(func(c *Config) {
		c.IdleTimeout = idle
		c.KeepAlive = -1
	}))
	p := dialRaw(t, b, "x.test", "b.test")
	if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("dialback %q", typ)
	}
	began := time.Now()
	park(t, b, ps.in, "the incoming reader")
	if cond := p.streamError(); cond != "" {
		t.Fatalf("stream error %q, want a close", cond)
	}
	if d := time.Since(began); d < idle-idle/4 {
		t.Fatalf("closed %v after authentication, before IdleTimeout", d)
	}
	for {
		e := waitEvent(t, b, LinkDown)
		if e.Link.Direction != Incoming {
			continue
		}
		if !errors.Is(e.Err, ErrIdle) {
			t.Fatalf("link down for %v", e.Err)
		}
		return
	}
}

// TestParkedIncomingKeepAlive: a parked incoming stream is still probed
// with <r/>, reads the peer's answer on its new goroutine, and still ends
// when the peer stays silent.
func TestParkedIncomingKeepAlive(t *testing.T) {
	clk := newFakeClock()
	ps := newParks()
	const k = 30 * time.Second
	b := authorityFor(t, []string{"x.test"}, withParks(ps), withConfig(func(c *Config) {
		c.clock = clk
		c.KeepAlive = k
		c.IdleTimeout = -1
	}))
	p := dialSMPeer(t, b)
	s := onlyIncoming(t, b)
	park(t, b, ps.in, "the incoming reader")
	clk.Advance(k)
	if el := p.nextSM(); el.Kind != sm.KindRequest {
		t.Fatalf("probe %+v", el)
	}
	clk.Advance(time.Millisecond)
	mark := clk.Now()
	p.write(string(sm.AppendAnswer(nil, 0)))
	// Read by the parked reader's goroutine: the monitor heard it
	// (polled: a read gives no signal).
	deadline := time.Now().Add(wait)
	for s.ka.Last().Before(mark) {
		if time.Now().After(deadline) {
			t.Fatal("the answer was not read")
		}
		time.Sleep(time.Millisecond)
	}
	park(t, b, ps.in, "the incoming reader, after the answer")
	clk.Advance(k)
	if el := p.nextSM(); el.Kind != sm.KindRequest {
		t.Fatalf("second probe %+v", el)
	}
	clk.Advance(k)
	if cond := p.streamError(); cond != "connection-timeout" {
		t.Fatalf("stream error %q", cond)
	}
}

// TestParkedLinksReload: a Reload that changes nothing leaves parked
// readers reading; one whose policy denies the peer closes the parked
// stream, both directions of its bidi link, with ErrDenied as the reason.
func TestParkedLinksReload(t *testing.T) {
	pa, pb := newParks(), newParks()
	a, b := pairNodes(t, []nodeOpt{withParks(pa)}, []nodeOpt{withParks(pb)})
	exchange := func() {
		t.Helper()
		a.send(msgAB)
		b.nextDelivered()
		b.send(msgBA)
		a.nextDelivered()
		waitAcked(t, a)
		waitAcked(t, b)
	}
	exchange()
	park(t, a, pa.out, "a's outgoing reader")
	park(t, b, pb.in, "b's incoming reader")
	for _, n := range []*node{a, b} {
		if err := n.m.Reload(n.m.settings().s2s); err != nil {
			t.Fatal(err)
		}
	}
	exchange()
	park(t, a, pa.out, "a's outgoing reader, after Reload")
	park(t, b, pb.in, "b's incoming reader, after Reload")
	b.denyBoth("a.test", "no longer allowed")
}

// TestProxyFaultsParked runs the fault runs with XEP-0198, both
// directions, while both nodes park every reader that read nothing for
// two looks a few milliseconds apart: parks land between the stanzas of
// the steady traffic, on the link the fault breaks (silent, cut, reset)
// and on the one that replaces it, and still nothing may be lost.
func TestProxyFaultsParked(t *testing.T) {
	var total atomic.Int64
	defer func() {
		if total.Load() == 0 {
			t.Error("no reader parked in any run")
		}
	}()
	for _, reverse := range []bool{false, true} {
		for i, f := range proxyFaults {
			name := strconv.Itoa(i) + "-" + f.name
			if reverse {
				name += "-reverse"
			}
			t.Run(name, func(t *testing.T) {
				var parked atomic.Int64
				often := withConfig(func(c *Config) {
					c.sweepEvery = 2 * time.Millisecond
					c.startingStack = func() uint64 { return 0 }
					c.parked = func(bool) { parked.Add(1) }
				})
				runProxyFault(t, f, true, reverse, often).report(t, true)
				t.Logf("%d parks", parked.Load())
				total.Add(parked.Load())
			})
		}
	}
}

// TestParkedAgainWhenStartShrank: a reader parked while new goroutines
// started with a stack larger than they do at a later sweep is parked
// again at that sweep, to wait on the smaller one: its new goroutine
// started large because a collection changed the runtime's figure after
// the sweep had checked it (8 KiB: the park gained nothing), or because a
// collection since found most goroutines parked and small (4 KiB, then 2
// KiB). One that started as small as new ones start now is left alone
// until it reads again.
func TestParkedAgainWhenStartShrank(t *testing.T) {
	for _, tc := range []struct {
		name string
		// The figures the runtime gives, in the order the Manager asks:
		// the two sweeps, the park, the next sweep, the park, the last
		// sweep.
		figures []uint64
	}{
		{"started big", []uint64{2048, 2048, 8192, 2048, 2048, 2048}},
		{"start shrank", []uint64{4096, 4096, 4096, 2048, 2048, 2048}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			ps := newParks()
			var asked atomic.Int32
			b := authorityFor(t, []string{"x.test"}, withParks(ps), withConfig(func(c *Config) {
				c.clock = clk
				c.startingStack = func() uint64 {
					i := int(asked.Add(1)) - 1
					if i >= len(tc.figures) {
						return 2048
					}
					return tc.figures[i]
				}
			}))
			p := dialRaw(t, b, "x.test", "b.test")
			if typ := p.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
				t.Fatalf("dialback %q", typ)
			}
			park(t, b, ps.in, "the first park")
			b.m.sweep()
			select {
			case <-ps.in:
			case <-time.After(wait):
				t.Fatal("the reader that started larger than new goroutines now start was not parked again")
			}
			b.m.sweep()
			noPark(t, ps.in, "after the park that started small")
			if n := asked.Load(); n != int32(len(tc.figures)) {
				t.Fatalf("the runtime's figure was asked %d times, want %d", n, len(tc.figures))
			}
			p.write(`<message from='a@x.test' to='b@b.test' id='after'/>`)
			if got := b.nextDelivered(); got.ID != "after" {
				t.Fatalf("delivered %+v", got)
			}
		})
	}
}
