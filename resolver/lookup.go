package resolver

import (
	"context"
	"fmt"
	"net/netip"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// SRV is one record of a domain's s2s services, as published.
type SRV struct {
	Target   string // host name, lower case, no trailing dot; "." means no service
	Port     uint16
	Priority uint16
	Weight   uint16
	Direct   bool // from _xmpps-server._tcp (XEP-0368 direct TLS)
}

// LookupSRV returns the records of one service of domain, in the order DNS
// gave them: _xmpps-server._tcp when direct is set, else _xmpp-server._tcp.
// Resolve merges both services; this shows them apart, for diagnosis. A
// name without records is an error wrapping ErrNotFound.
func (r *DNS) LookupSRV(ctx context.Context, name string, direct bool) ([]SRV, error) {
	d, err := domain.Normalize(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	prefix := "_xmpp-server._tcp."
	if direct {
		prefix = "_xmpps-server._tcp."
	}
	resp, err := r.s.client.lookup(ctx, prefix+d, dnsmessage.TypeSRV)
	if err != nil {
		return nil, err
	}
	recs := make([]SRV, 0, len(resp.srvs))
	for _, rec := range resp.srvs {
		recs = append(recs, SRV{Target: rec.target, Port: rec.port, Priority: rec.priority, Weight: rec.weight, Direct: direct})
	}
	return recs, nil
}

// LookupAddrs returns the addresses of host in the families and order of
// Config.IPVersions, as Resolve uses them for SRV targets and the
// fallback.
func (r *DNS) LookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	h, err := domain.Normalize(host)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return r.lookupAddrs(ctx, h)
}

// Override returns the address override (the address option) for domain,
// if it has one; Resolve then asks DNS nothing.
func (r *DNS) Override(name string) (netip.AddrPort, bool) {
	d, err := domain.Normalize(name)
	if err != nil {
		return netip.AddrPort{}, false
	}
	ap, ok := r.s.overrides[d]
	return ap, ok
}

// Port returns the port used without SRV records (outgoing.port).
func (r *DNS) Port() uint16 { return r.s.port }
