package bench

import (
	"context"
	"time"
)

// Pair is two Managers linked on loopback, for benchmarks in other packages
// (s2s's own -bench runs drive it with b.N). One domain sends, the other
// receives and answers pings. A Pair is not safe for concurrent use.
type Pair struct {
	p   *libPair
	tls bool
}

// NewPair starts the two Managers, with use_starttls = "required_trusted"
// (TLS 1.3) when tls is set, else "false". Close it when done.
func NewPair(tls bool) (*Pair, error) {
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	p, err := newLibPair(e.ca, tls)
	if err != nil {
		return nil, err
	}
	return &Pair{p: p, tls: tls}, nil
}

// Messages sends n ~200-byte messages over one link, at most window
// undelivered at once, and returns the time from the first Send to the
// last delivery. The link is brought up before the clock starts.
func (p *Pair) Messages(ctx context.Context, n, window int) (time.Duration, error) {
	d, _, err := p.p.messages(ctx, n, window)
	return d, err
}

// Pings runs n XEP-0199 round trips with window outstanding and returns
// the time they took. Both links are brought up before the clock starts.
func (p *Pair) Pings(ctx context.Context, n, window int) (time.Duration, error) {
	return p.p.pings(ctx, n, window)
}

// HostPings runs n XEP-0199 round trips with window outstanding from the
// raw load generator (a TLS or TCP connection negotiated by hand, the raw
// rows' client) to the receiving Manager alone, and returns the time they
// took. The load generator's stream is opened, and one ping answered,
// before the clock starts.
func (p *Pair) HostPings(ctx context.Context, n, window int) (time.Duration, error) {
	return p.p.hostPings(ctx, p.tls, n, window)
}

// Close shuts both Managers down.
func (p *Pair) Close() { p.p.close() }
