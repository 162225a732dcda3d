package resolver

import (
	"context"
	"fmt"
	"net/netip"
)

// Target is one place to connect to for a remote domain.
type Target struct {
	// Host is the SRV target host the address belongs to, or the remote
	// domain itself for an address override or the A/AAAA fallback. It is a
	// lower-case A-label without the trailing dot. It is informational: TLS
	// certificates are still checked against the remote domain, not Host
	// (RFC 6120 §13.7.2.1).
	Host string
	// Addr is the IP address and port to connect to.
	Addr netip.AddrPort
	// Direct is true when TLS starts as soon as TCP is up (XEP-0368, from an
	// _xmpps-server SRV record) instead of through STARTTLS.
	Direct bool
}

// String returns a form for logs, such as
// "xmpp.example.org [2001:db8::1]:5269 (STARTTLS)".
func (t Target) String() string {
	tls := "STARTTLS"
	if t.Direct {
		tls = "direct TLS"
	}
	return fmt.Sprintf("%s %s (%s)", t.Host, t.Addr, tls)
}

// Resolver turns a remote domain into the ordered list of targets to try.
// Implementations must be safe for concurrent use. A host that has its own
// DNS machinery can implement it; DNS, returned by New, is the default.
//
// Resolve returns at least one target when err is nil. Errors should wrap
// ErrNotFound, ErrNoService or ErrTimeout where they apply, so that the
// caller can pick the right XMPP error condition.
type Resolver interface {
	Resolve(ctx context.Context, domain string) ([]Target, error)
}
