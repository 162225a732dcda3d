// Package resolver finds where to connect for a remote XMPP domain, and
// connects.
//
// Resolution follows the s2s options of MongooseIM: an address override
// (address) wins and skips DNS; otherwise the SRV records of XEP-0368
// (_xmpps-server._tcp, direct TLS) and RFC 6120 §3.2 (_xmpp-server._tcp,
// STARTTLS) are merged by priority and weight (RFC 2782); a lone "." target
// closes the service; with no SRV records at all the domain's own addresses
// are used on outgoing.port. Addresses are looked up in outgoing.ip_versions
// order. The DNS client is the package's own, on
// golang.org/x/net/dns/dnsmessage, so that dns.timeout bounds one query
// attempt and dns.retries counts the attempts, exactly.
//
// Dialer then tries the targets in order, racing the addresses of each SRV
// host as RFC 8305 (Happy Eyeballs v2) describes, each attempt bounded by
// outgoing.connection_timeout.
//
//	r, err := resolver.New(resolver.Config{Timeout: 10 * time.Second, Retries: 2})
//	...
//	targets, err := r.Resolve(ctx, "example.org")
//	...
//	d := resolver.Dialer{Timeout: 10 * time.Second}
//	conn, target, err := d.Dial(ctx, targets)
//	// target.Direct: start TLS now; otherwise open the stream and STARTTLS.
//
// # Errors and stanza error conditions
//
// A server bouncing stanzas after a failure picks the RFC 6120 condition by
// the error:
//
//	errors.Is(err, ErrNotFound)       remote-server-not-found (NXDOMAIN, invalid name)
//	errors.Is(err, ErrNoService)      remote-server-not-found (SRV ".", no address)
//	errors.Is(err, ErrTimeout)        remote-server-timeout   (DNS unanswered, *DNSError.Attempts says how often)
//	errors.Is(err, ErrServerFailure)  remote-server-timeout   (SERVFAIL/REFUSED on every attempt)
//	*DialError with Timeout() true    remote-server-timeout   (every connection attempt timed out)
//	*DialError otherwise              remote-server-not-found (refused, unreachable)
//
// Check ErrTimeout and ErrServerFailure before ErrNotFound: when the two SRV
// lookups fail differently the error joins both.
package resolver
