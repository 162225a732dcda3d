package bench

import (
	"context"
	"fmt"
	"net"
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
