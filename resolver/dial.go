package resolver

import (
	"context"
	"fmt"
	"net"
	"time"
)

// DefaultDelay is the Connection Attempt Delay of RFC 8305 §5: how long one
// address is given before the next one is tried alongside it.
const DefaultDelay = 250 * time.Millisecond

// Dialer connects to the first target that answers. The zero value is
// usable; a Dialer is safe for concurrent use as long as its fields are not
// changed meanwhile.
//
// Targets are tried in order. Consecutive targets with the same Host and
// Direct come from one SRV record (or the A/AAAA fallback) and are raced as
// RFC 8305 describes: address families interleaved starting with the family
// of the first address (which Resolve put first by IPVersions), a new
// attempt started every Delay while earlier ones are still pending, or at
// once when one fails; the first connection wins and the others are closed.
type Dialer struct {
	// Timeout bounds each connection attempt (outgoing.connection_timeout);
	// 0 means no bound but the context's ("infinity").
	Timeout time.Duration
	// Delay is the staggering delay between attempts to the addresses of
	// one host; 0 means DefaultDelay.
	Delay time.Duration
	// DialContext opens the TCP connections, for example through a proxy.
	// It is called with network "tcp" and an "ip:port" address, and must
	// honour ctx. Nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// after replaces time.After in tests, so they can fire the staggering
	// delay when they choose.
	after func(time.Duration) <-chan time.Time
}

// Dial connects to the first target that accepts and returns the connection
// with the target it reached; when Direct is set TLS is the caller's next
// step. On failure the error is a *DialError that lists every attempt.
func (d *Dialer) Dial(ctx context.Context, targets []Target) (net.Conn, Target, error) {
	if len(targets) == 0 {
		return nil, Target{}, fmt.Errorf("%w: no target to dial", ErrNoService)
	}
	var attempts []AttemptError
	for start := 0; start < len(targets); {
		end := start + 1
		for end < len(targets) && targets[end].Host == targets[start].Host &&
			targets[end].Direct == targets[start].Direct {
			end++
		}
		conn, t, errs := d.race(ctx, interleave(targets[start:end]))
		if conn != nil {
			return conn, t, nil
		}
		attempts = append(attempts, errs...)
		if err := ctx.Err(); err != nil {
			return nil, Target{}, &DialError{Attempts: attempts, Cause: err}
		}
		start = end
	}
	return nil, Target{}, &DialError{Attempts: attempts}
}

// interleave reorders one host's addresses to alternate families, beginning
// with the first address' family, keeping the order within each family
// (RFC 8305 §4).
func interleave(group []Target) []Target {
	is4 := func(t Target) bool { return t.Addr.Addr().Unmap().Is4() }
	var first, second []Target
	for _, t := range group {
		if is4(t) == is4(group[0]) {
			first = append(first, t)
		} else {
			second = append(second, t)
		}
	}
	out := make([]Target, 0, len(group))
	for i := 0; i < len(first) || i < len(second); i++ {
		if i < len(first) {
			out = append(out, first[i])
		}
		if i < len(second) {
			out = append(out, second[i])
		}
	}
	return out
}

type attemptResult struct {
	i    int
	conn net.Conn
	err  error
}

// race runs the staggered attempts to one host's addresses. It returns the
// winning connection, or the errors of all attempts it started.
func (d *Dialer) race(ctx context.Context, addrs []Target) (net.Conn, Target, []AttemptError) {
	if len(addrs) == 1 {
		// Nothing to race (the usual case: one address per host): dial
		// on the caller's goroutine, saving a goroutine and a hand-over
		// per link.
		conn, err := d.dialOne(ctx, addrs[0])
		if err != nil {
			return nil, Target{}, []AttemptError{{Target: addrs[0], Err: err}}
		}
		return conn, addrs[0], nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	delay := d.Delay
	if delay <= 0 {
		delay = DefaultDelay
	}
	after := d.after
	if after == nil {
		after = time.After
	}

	results := make(chan attemptResult, len(addrs))
	next, pending := 0, 0
	var timer <-chan time.Time
	startNext := func() {
		i := next
		next++
		pending++
		go func() {
			conn, err := d.dialOne(ctx, addrs[i])
			results <- attemptResult{i: i, conn: conn, err: err}
		}()
		timer = nil
		if next < len(addrs) {
			timer = after(delay)
		}
	}

	errs := make([]error, len(addrs))
	startNext()
	for pending > 0 {
		select {
		case <-timer:
			if ctx.Err() == nil {
				startNext()
			}
		case res := <-results:
			pending--
			if res.err == nil {
				cancel()
				// The losers still running are cancelled; close
				// any that connected all the same.
				go func(n int) {
					for range n {
						if r := <-results; r.conn != nil {
							r.conn.Close()
						}
					}
				}(pending)
				return res.conn, addrs[res.i], nil
			}
			errs[res.i] = res.err
			if next < len(addrs) && ctx.Err() == nil {
				startNext()
			}
		}
	}
	var out []AttemptError
	for i := range next {
		out = append(out, AttemptError{Target: addrs[i], Err: errs[i]})
	}
	return nil, Target{}, out
}

func (d *Dialer) dialOne(ctx context.Context, t Target) (net.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	dial := d.DialContext
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	return dial(ctx, "tcp", t.Addr.String())
}
