package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
)

// connect opens TCP to every target, one after the other so that each time
// is its own, and keeps the first that answered, in target order: the one
// a link would use when all answer. A target that does not answer is a
// warning while another does, and a failure when none does.
func (p *probe) connect(ctx context.Context, targets []resolver.Target) (net.Conn, resolver.Target) {
	if len(targets) == 0 {
		p.rep.add(Check{Step: s2s.StepConnect, Name: "TCP", Status: Failure, Detail: "no target to connect to",
			Advice: "Fix the DNS step first."})
		return nil, resolver.Target{}
	}
	dial := p.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var (
		chosen net.Conn
		target resolver.Target
		failed []int // indexes of failed checks
	)
	for _, t := range targets {
		c := Check{Step: s2s.StepConnect, Name: "connect " + t.String()}
		dctx, cancel := context.WithTimeout(ctx, p.timeout)
		start := time.Now()
		conn, err := dial(dctx, "tcp", t.Addr.String())
		c.Took = time.Since(start)
		cancel()
		if err != nil {
			c.Status, c.Detail = Failure, err.Error()
			c.Advice = connectAdvice(err, t, p.remote)
			failed = append(failed, len(p.rep.Checks))
		} else {
			c.Detail = "connected from " + conn.LocalAddr().String()
			if chosen == nil {
				chosen, target = conn, t
				c.Detail += "; the checks below use this target"
			} else {
				conn.Close()
			}
		}
		p.rep.add(c)
	}
	if chosen != nil {
		for _, i := range failed {
			p.rep.Checks[i].Status = Warning
			p.rep.Checks[i].Advice += " Links use the targets that answer meanwhile."
		}
	}
	return chosen, target
}

func connectAdvice(err error, t resolver.Target, remote string) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("Nothing listens on %s: start %s's s2s listener on that port, or fix the SRV record or address override that points there.", t.Addr, remote)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("%s did not answer within outgoing.connection_timeout: a firewall may drop the packets, or the host is down.", t.Addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("No route to %s from this machine: check its network, or leave this IP version out of outgoing.ip_versions.", t.Addr.Addr())
	}
	return "Check the network between this machine and " + t.Addr.String() + "."
}
