package bench

import (
	"context"
	"fmt"
	"net"
	"time"
)

// twoProcess fills the TwoProc column of the message and ping rows: the
// same Manager sends as in the ours column, but the receiving Manager runs
// in a child process (see peerproc.go). It carries the same number of
// stanzas as the in-process runs. Messages are acknowledged the way they
// are for the peers, by a ping after every messageBatch (the child handles
// a stream's stanzas in order), because the child cannot signal each
// delivery to this process without adding a message of its own per stanza.
func twoProcess(ctx context.Context, e *env, c Config, tlsOn bool, rows []Row) error {
	l, err := newPeerLoad(e, tlsOn, false)
	if err != nil {
		return err
	}
	child, err := startChildPeer(ctx, e, tlsOn, l.ln.Addr().(*net.TCPAddr).AddrPort(), c.PeerLog)
	if err != nil {
		l.close()
		return err
	}
	l.peer, l.msgTo, l.addr = receiverDomain, "romeo@"+receiverDomain, child.addr
	set := func(name string, v float64) {
		for i := range rows {
			if rows[i].Name == name {
				rows[i].TwoProc = v
			}
		}
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "%s: two processes %s\n", name, num(v))
		}
	}
	run := func() error {
		var msgs []float64
		for range c.Runs {
			d, err := l.messages(ctx, c.Messages, c.MessageWindow)
			if err != nil {
				return fmt.Errorf("two-process messages over %s: %w", tlsName(tlsOn), err)
			}
			msgs = append(msgs, float64(c.Messages)/d.Seconds())
		}
		set("messages, one link, "+tlsName(tlsOn), median(msgs))
		for _, w := range c.Windows {
			var rt []float64
			for range c.Runs {
				d, err := l.pings(ctx, c.Pings, w)
				if err != nil {
					return fmt.Errorf("two-process pings over %s: %w", tlsName(tlsOn), err)
				}
				rt = append(rt, float64(c.Pings)/d.Seconds())
			}
			set(fmt.Sprintf("pings, window %d, %s", w, tlsName(tlsOn)), median(rt))
		}
		return nil
	}
	err = run()
	// Our Manager first, so that the child sees its links close the way a
	// peer's do, then the child.
	l.close()
	if serr := child.stop(); err == nil && serr != nil {
		err = fmt.Errorf("bench: child peer: %w", serr)
	}
	return err
}

// idleBatch is how many links idleTwoProcess brings up at once.
const idleBatch = 1000

// idleTwoProcess is the idle experiment with the receiving Manager in a
// child process: our Manager brings up n links (one per sending domain,
// each confirmed by a ping's result) and both processes report their
// growth, which is divided over the 2n link ends. Each process holds one
// end of each link, so n may come close to the open-file limit, where the
// in-process experiment stops at half of it.
func idleTwoProcess(ctx context.Context, e *env, tlsOn bool, n int, wait time.Duration) (idleFigures, error) {
	l, err := newPeerLoad(e, tlsOn, false)
	if err != nil {
		return idleFigures{}, err
	}
	child, err := startChildPeer(ctx, e, tlsOn, l.ln.Addr().(*net.TCPAddr).AddrPort(), nil)
	if err != nil {
		l.close()
		return idleFigures{}, err
	}
	defer func() {
		l.close()
		child.stop()
	}()
	l.peer, l.msgTo, l.addr = receiverDomain, "romeo@"+receiverDomain, child.addr
	acked := make(chan struct{}, n+1)
	l.acks(acked)
	// The child answers every ping over its one link back to
	// senderDomain(0); bring that up, and the first link, before the
	// baseline, as the in-process experiment does.
	if err := l.pingFrom(ctx, 0, acked); err != nil {
		return idleFigures{}, err
	}
	settle(ctx)
	pb := sampleMem()
	cb, err := child.mem()
	if err != nil {
		return idleFigures{}, err
	}
	// In batches, so that thousands of handshakes at once on a small
	// machine do not run into the negotiation timeout.
	start := time.Now()
	for base := 1; base <= n; base += idleBatch {
		end := min(base+idleBatch, n+1)
		for i := base; i < end; i++ {
			ping, _ := pingFor(senderDomain(i))
			if err := l.m.Send(ctx, ping); err != nil {
				return idleFigures{}, err
			}
		}
		for range end - base {
			if err := l.wait(ctx, acked, "idle link set-up"); err != nil {
				return idleFigures{}, err
			}
		}
	}
	d := time.Since(start)
	if err := l.check(); err != nil {
		return idleFigures{}, err
	}
	settle(ctx)
	quiet(ctx, wait, child.gc) // the child's links too
	pa := sampleMem()
	ca, err := child.mem()
	if err != nil {
		return idleFigures{}, err
	}
	ends := float64(2 * n)
	grow := func(a, b, c, d uint64) float64 {
		return (float64(a) - float64(b) + float64(c) - float64(d)) / ends
	}
	return idleFigures{
		heap:       grow(pa.heap, pb.heap, ca.heap, cb.heap),
		stacks:     grow(pa.stacks, pb.stacks, ca.stacks, cb.stacks),
		rss:        grow(pa.rss, pb.rss, ca.rss, cb.rss),
		goroutines: float64(pa.goroutines-pb.goroutines+ca.goroutines-cb.goroutines) / float64(n),
		setup:      d.Seconds(),
	}, nil
}
