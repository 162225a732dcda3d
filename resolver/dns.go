package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// DNS is the default Resolver: address overrides first, then the SRV
// records of XEP-0368 and RFC 6120 §3.2, then the domain's own addresses.
// It speaks DNS itself so that Config.Timeout and Config.Retries mean
// exactly what the options say. A DNS is safe for concurrent use; create
// one with New.
type DNS struct {
	s settings

	randMu sync.Mutex // serialises s.randN, which may not be thread-safe
}

var _ Resolver = (*DNS)(nil)

// New returns a DNS resolver for c, or an error if c is invalid or, when
// c.Nameservers is empty, /etc/resolv.conf cannot be read.
func New(c Config) (*DNS, error) {
	s, err := c.settings(resolvConfPath)
	if err != nil {
		return nil, err
	}
	return &DNS{s: s}, nil
}

// Resolve returns the targets to try for the remote domain, best first:
//
//  1. an address override for the domain: one target, no DNS at all;
//  2. else the SRV records of _xmpps-server._tcp (direct TLS) and
//     _xmpp-server._tcp (STARTTLS), asked concurrently and merged into one
//     list ordered by priority, and by RFC 2782 weighted random choice
//     within a priority; each SRV target host gives one target per address,
//     in IPVersions order. A service whose only record has target "." is
//     not offered, and no fallback is made for it;
//  3. else, when neither service has records, the domain's own A/AAAA
//     addresses on Config.Port, in IPVersions order.
//
// The domain is normalised first, so IDNs are queried as A-labels. If one
// SRV lookup fails but the other gives records, those records are used.
// Errors wrap ErrNotFound, ErrNoService, ErrTimeout or ErrServerFailure
// (through a *DNSError when DNS said so), or the context's error.
func (r *DNS) Resolve(ctx context.Context, name string) ([]Target, error) {
	d, err := domain.Normalize(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if ap, ok := r.s.overrides[d]; ok {
		return []Target{{Host: d, Addr: ap}}, nil
	}

	records, closed, err := r.lookupSRV(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(records) > 0 {
		return r.srvTargets(ctx, d, r.order(records))
	}
	if closed {
		return nil, fmt.Errorf("%w: %s publishes the SRV target \".\"", ErrNoService, d)
	}

	addrs, err := r.lookupAddrs(ctx, d)
	if err != nil {
		return nil, err
	}
	targets := make([]Target, len(addrs))
	for i, a := range addrs {
		targets[i] = Target{Host: d, Addr: netip.AddrPortFrom(a, r.s.port)}
	}
	return targets, nil
}

// lookupSRV asks for both services at once and merges their records.
// closed reports that a service answered with the lone "." target and the
// other one offered nothing either.
func (r *DNS) lookupSRV(ctx context.Context, d string) (records []srvRecord, closed bool, err error) {
	services := [2]struct {
		prefix string
		direct bool
		resp   *response
		err    error
	}{
		{prefix: "_xmpps-server._tcp.", direct: true},
		{prefix: "_xmpp-server._tcp.", direct: false},
	}
	var wg sync.WaitGroup
	for i := range services {
		wg.Go(func() {
			svc := &services[i]
			svc.resp, svc.err = r.s.client.lookup(ctx, svc.prefix+d, dnsmessage.TypeSRV)
		})
	}
	wg.Wait()

	var errs []error
	for _, svc := range services {
		switch {
		case errors.Is(svc.err, ErrNotFound):
			// No such service name: nothing published, try the rest.
		case svc.err != nil:
			errs = append(errs, svc.err)
		default:
			var offered []srvRecord
			for _, rec := range svc.resp.srvs {
				if rec.target != "." {
					rec.direct = svc.direct
					offered = append(offered, rec)
				}
			}
			if len(offered) == 0 && len(svc.resp.srvs) > 0 {
				closed = true
			}
			records = append(records, offered...)
		}
	}
	if len(records) == 0 && len(errs) > 0 {
		// Without an answer from every service we cannot tell "no
		// service" from "service we could not see"; say what failed.
		return nil, false, errors.Join(errs...)
	}
	return records, closed, nil
}

// lookupAddrs returns the addresses of host, families in IPVersions order,
// asking for them concurrently.
func (r *DNS) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		// An SRV target should never be an address, but if one is,
		// DNS has nothing to add.
		if r.wants(a) {
			return []netip.Addr{a.Unmap()}, nil
		}
		return nil, fmt.Errorf("%w: %s is not in an allowed IP version", ErrNoService, host)
	}
	results := make([]struct {
		resp *response
		err  error
	}, len(r.s.families))
	var wg sync.WaitGroup
	for i, v := range r.s.families {
		qtype := dnsmessage.TypeA
		if v == 6 {
			qtype = dnsmessage.TypeAAAA
		}
		wg.Go(func() {
			results[i].resp, results[i].err = r.s.client.lookup(ctx, host, qtype)
		})
	}
	wg.Wait()

	var addrs []netip.Addr
	var errs []error
	notFound := 0
	for _, res := range results {
		switch {
		case errors.Is(res.err, ErrNotFound):
			notFound++
			errs = append(errs, res.err)
		case res.err != nil:
			errs = append(errs, res.err)
		default:
			for _, a := range res.resp.addrs {
				if r.wants(a) {
					addrs = append(addrs, a.Unmap())
				}
			}
		}
	}
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case notFound == len(results):
		return nil, errs[0]
	case len(errs) > 0:
		return nil, errors.Join(errs...)
	default:
		return nil, fmt.Errorf("%w: %s has no address", ErrNoService, host)
	}
}

// wants reports whether a's family is one of IPVersions.
func (r *DNS) wants(a netip.Addr) bool {
	v := 6
	if a.Unmap().Is4() {
		v = 4
	}
	for _, f := range r.s.families {
		if f == v {
			return true
		}
	}
	return false
}

// maxTargetLookups bounds the SRV targets looked up at once, each with a
// query per address family.
const maxTargetLookups = 4

// srvTargets resolves the hosts of the ordered records and lists their
// addresses in record order. A host that cannot be resolved is skipped; if
// none can, the reasons are returned.
func (r *DNS) srvTargets(ctx context.Context, d string, records []srvRecord) ([]Target, error) {
	type result struct {
		addrs []netip.Addr
		err   error
	}
	hosts := make(map[string]*result)
	var todo []string
	for _, rec := range records {
		if _, ok := hosts[rec.target]; !ok {
			hosts[rec.target] = new(result)
			todo = append(todo, rec.target)
		}
	}
	// The domain's owner chooses how many targets there are (a DNS answer
	// holds hundreds): a few workers look them up, in record order.
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(len(todo), maxTargetLookups) {
		wg.Go(func() {
			for host := range next {
				res := hosts[host]
				res.addrs, res.err = r.lookupAddrs(ctx, host)
			}
		})
	}
	for _, host := range todo {
		next <- host
	}
	close(next)
	wg.Wait()

	var targets []Target
	var errs []error
	for _, rec := range records {
		res := hosts[rec.target]
		if res.err != nil {
			errs = append(errs, res.err)
			res.err = nil // report each host once
			continue
		}
		for _, a := range res.addrs {
			targets = append(targets, Target{
				Host:   rec.target,
				Addr:   netip.AddrPortFrom(a, rec.port),
				Direct: rec.direct,
			})
		}
	}
	if len(targets) > 0 {
		return targets, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	onlyMissing := true
	for _, err := range errs {
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoService) {
			onlyMissing = false
		}
	}
	if onlyMissing {
		// The domain exists and has SRV records; their hosts lacking
		// addresses means there is no service, not no domain.
		return nil, fmt.Errorf("%w: no SRV target of %s has an address: %w", ErrNoService, d, errors.Join(errs...))
	}
	return nil, errors.Join(errs...)
}
