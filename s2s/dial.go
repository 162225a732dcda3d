package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/xmpp-s2s/federation/resolver"
)

// A link attempt is bounded step by step, each step by its own option,
// rather than by one deadline over the whole setup: one deadline made the
// options contradict each other (with the defaults, connection_timeout ran
// out before dns.retries could make its second attempt), and let a first
// target that accepts TCP and then says nothing use up the time of every
// target after it.
//
//   - DNS: dns.timeout per query attempt, dns.retries attempts (the
//     resolver's own bounds);
//   - TCP: outgoing.connection_timeout per connection attempt, the
//     addresses of one host raced as RFC 8305 describes (resolver.Dialer);
//   - stream negotiation (TLS, features, authentication): NegotiationTimeout
//     per target, from its TCP connection to the authenticated stream.
//
// Targets are tried in order (RFC 6120 §3.2.1, XEP-0368): one that fails at
// TCP, TLS or stream negotiation is given up and the next one is tried, so
// a direct TLS target whose TLS fails falls back to the STARTTLS targets
// after it. A refusal of our authentication is the domain's answer, not a
// target's fault, and ends the attempt. Only when every target failed is
// the attempt a failure, a *TargetsError listing them.

// TargetError is the failure of one target of a link attempt: a host's
// addresses at TCP (Target is the first of them, Err a *resolver.DialError
// listing each), or the address that connected at TLS or stream
// negotiation. Err is a *StepError naming the step.
type TargetError struct {
	Target resolver.Target
	Err    error
}

func (e *TargetError) Error() string { return e.Target.String() + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *TargetError) Unwrap() error { return e.Err }

// Timeout reports whether the target failed for want of an answer in time:
// every TCP attempt timed out, or negotiation outlasted its bound.
func (e *TargetError) Timeout() bool { return isTimeoutErr(e.Err) }

// TargetsError is a link attempt in which every target of the remote domain
// failed. Bounce.Err and the LinkFailed event carry it (under a *StepError
// naming the step of the last target); its text lists each target and what
// it did.
type TargetsError struct {
	Remote  string
	Targets []TargetError
}

func (e *TargetsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "every target of %s failed", e.Remote)
	for i := range e.Targets {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(e.Targets[i].Error())
	}
	return b.String()
}

// Unwrap returns each target's error.
func (e *TargetsError) Unwrap() []error {
	errs := make([]error, len(e.Targets))
	for i := range e.Targets {
		errs[i] = &e.Targets[i]
	}
	return errs
}

// Timeout reports whether every target failed by timing out; the stanzas
// that waited are then bounced with remote-server-timeout.
func (e *TargetsError) Timeout() bool {
	if len(e.Targets) == 0 {
		return false
	}
	for i := range e.Targets {
		if !e.Targets[i].Timeout() {
			return false
		}
	}
	return true
}

// errNegotiationTimeout is the cause of a target whose negotiation
// outlasted NegotiationTimeout.
var errNegotiationTimeout = fmt.Errorf("s2s: no authenticated stream within the negotiation timeout: %w", context.DeadlineExceeded)

func isTimeoutErr(err error) bool {
	var de *resolver.DialError
	if errors.As(err, &de) {
		return de.Timeout()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostGroups splits targets into the runs the Dialer races as one host:
// consecutive targets with the same Host and Direct.
func hostGroups(targets []resolver.Target) [][]resolver.Target {
	var groups [][]resolver.Target
	for start := 0; start < len(targets); {
		end := start + 1
		for end < len(targets) && targets[end].Host == targets[start].Host &&
			targets[end].Direct == targets[start].Direct {
			end++
		}
		groups = append(groups, targets[start:end])
		start = end
	}
	return groups
}

// dialTargets connects to the targets of p.remote in order and negotiates
// the stream (see the top of this file). ctx bounds the whole attempt (the
// Manager's life, a verification's deadline); each step has its own bound
// within it.
func (m *Manager) dialTargets(ctx context.Context, st *settings, p pair, targets []resolver.Target, auth bool) (*outConn, error) {
	if len(targets) == 0 {
		// A Resolver of the host's that broke its contract.
		return nil, atStep(StepDNS, fmt.Errorf("%w: no target for %s", resolver.ErrNoService, p.remote))
	}
	failed := &TargetsError{Remote: p.remote}
	giveUp := func() error {
		last := failed.Targets[len(failed.Targets)-1]
		return &StepError{Step: StepOf(last.Err), Err: failed}
	}
	external := auth && !m.cfg.DisableSASLExternal
	for _, group := range hostGroups(targets) {
		for {
			conn, target, err := st.dialer.Dial(ctx, group)
			if err != nil {
				failed.Targets = append(failed.Targets, TargetError{Target: group[0], Err: atStep(StepConnect, err)})
				if ctx.Err() != nil {
					return nil, giveUp()
				}
				break
			}
			conn = m.tapped(conn)
			oc, err := m.negotiateTarget(ctx, st, p, conn, target, auth, external)
			if err == nil {
				return oc, nil
			}
			var refused *externalRefused
			if errors.As(err, &refused) && refused.dialback {
				// Peers refuse certificates for reasons of their own
				// (another CA, an old name); dialback may still work,
				// on a new stream to the same target.
				m.log.Info("s2s: SASL EXTERNAL refused; trying dialback on a new stream",
					"local", p.local, "remote", p.remote, "target", target.String(), "err", err)
				external = false
				continue
			}
			if errors.Is(err, ErrAuth) {
				// The domain refused us: another target would too.
				return nil, atStep(StepAuth, err)
			}
			failed.Targets = append(failed.Targets, TargetError{Target: target, Err: atStep(stepOr(err, StepStream), err)})
			if ctx.Err() != nil {
				return nil, giveUp()
			}
			m.log.Info("s2s: target failed; trying the next one", "local", p.local, "remote", p.remote,
				"target", target.String(), "err", err)
			break
		}
	}
	return nil, giveUp()
}

// negotiateTarget negotiates the stream on conn within NegotiationTimeout.
func (m *Manager) negotiateTarget(ctx context.Context, st *settings, p pair, conn net.Conn, target resolver.Target, auth, external bool) (*outConn, error) {
	tctx, cancel := context.WithTimeout(ctx, m.cfg.NegotiationTimeout)
	defer cancel()
	// Negotiation reads and writes must end with tctx; closing the
	// connection is the one way to interrupt them.
	stop := context.AfterFunc(tctx, func() { conn.Close() })
	oc, err := m.negotiateOut(tctx, st, p, conn, target.Direct, auth, external)
	if !stop() {
		if oc != nil {
			oc.conn.Close()
		}
		cause := errNegotiationTimeout
		if ctx.Err() != nil {
			cause = context.Cause(ctx)
		}
		step := stepOr(err, StepStream)
		if errors.Is(err, ErrAuth) {
			// Cut off while waiting for the dialback answer: the
			// target's silence, not the domain's refusal.
			step = StepAuth
		}
		return nil, &StepError{Step: step, Err: fmt.Errorf("%w: %s (%s): %w", ErrNegotiation, p.remote, target.Addr, cause)}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return oc, nil
}
