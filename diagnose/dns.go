package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
)

// dns shows each record a link's resolver reads (the address override, or
// both SRV services and the addresses of their targets, or the domain's
// own addresses) and returns the targets in the order a link tries them.
func (p *probe) dns(ctx context.Context) []resolver.Target {
	if ap, ok := p.res.Override(p.remote); ok {
		p.rep.add(Check{Step: s2s.StepDNS, Name: "address override", Detail: fmt.Sprintf("the address option sends %s to %s; DNS is not asked", p.remote, ap)})
		return []resolver.Target{{Host: p.remote, Addr: ap}}
	}

	hosts := []string{}
	seen := map[string]bool{}
	var none []string // services without records
	for _, direct := range []bool{true, false} {
		name := "_xmpp-server._tcp." + p.remote
		if direct {
			name = "_xmpps-server._tcp." + p.remote
		}
		c := Check{Step: s2s.StepDNS, Name: "SRV " + name}
		sctx, cancel := context.WithTimeout(ctx, p.timeout)
		start := time.Now()
		recs, err := p.res.LookupSRV(sctx, p.remote, direct)
		c.Took = time.Since(start)
		cancel()
		switch {
		case errors.Is(err, resolver.ErrNotFound) || err == nil && len(recs) == 0:
			c.Detail = "none published"
			none = append(none, name)
		case err != nil:
			c.Status, c.Detail = Failure, err.Error()
			c.Advice = dnsAdvice(err, name)
		default:
			var parts []string
			for _, r := range recs {
				if r.Target == "." {
					parts = append(parts, `"." (no service)`)
					continue
				}
				parts = append(parts, fmt.Sprintf("%s:%d (priority %d, weight %d)", r.Target, r.Port, r.Priority, r.Weight))
				if !seen[r.Target] {
					seen[r.Target] = true
					hosts = append(hosts, r.Target)
				}
			}
			c.Detail = strings.Join(parts, ", ")
			if len(recs) == 1 && recs[0].Target == "." {
				c.Status = Warning
				c.Advice = fmt.Sprintf("%s says it offers no s2s service here: if it should federate, its administrator must publish a real target.", p.remote)
			}
		}
		p.rep.add(c)
	}
	if len(none) == 2 {
		// Legal (RFC 6120 §3.2.2) but a frequent cause of trouble: the
		// fallback is the domain's own address on the default port.
		last := &p.rep.Checks[len(p.rep.Checks)-1]
		last.Status = Warning
		last.Detail = fmt.Sprintf("no SRV records for either service; links fall back to %s's own addresses on port %d", p.remote, p.res.Port())
		last.Advice = fmt.Sprintf("If %s's XMPP server is not at its own address on port %d, publish an SRV record: _xmpp-server._tcp.%s. SRV 0 5 5269 <server host>.", p.remote, p.res.Port(), p.remote)
		hosts = append(hosts, p.remote)
	}
	for _, h := range hosts {
		c := Check{Step: s2s.StepDNS, Name: "addresses of " + h}
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		start := time.Now()
		addrs, err := p.res.LookupAddrs(actx, h)
		c.Took = time.Since(start)
		cancel()
		if err != nil {
			c.Status, c.Detail = Failure, err.Error()
			c.Advice = dnsAdvice(err, h)
		} else {
			c.Detail = joinAddrs(addrs)
		}
		p.rep.add(c)
	}

	c := Check{Step: s2s.StepDNS, Name: "connection targets"}
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	targets, err := p.res.Resolve(rctx, p.remote)
	if err != nil {
		c.Status, c.Detail = Failure, err.Error()
		c.Advice = dnsAdvice(err, p.remote)
		p.rep.add(c)
		return nil
	}
	parts := make([]string, len(targets))
	for i, t := range targets {
		parts[i] = t.String()
	}
	c.Detail = strings.Join(parts, "; ")
	p.rep.add(c)
	return targets
}

// dnsAdvice says what to do about a DNS error for name.
func dnsAdvice(err error, name string) string {
	switch {
	case errors.Is(err, resolver.ErrNotFound):
		return fmt.Sprintf("%s does not exist in DNS: check the domain's spelling and that its zone is published.", name)
	case errors.Is(err, resolver.ErrNoService):
		return fmt.Sprintf("%s publishes no usable s2s service: its SRV targets need A or AAAA records (in the IP versions of outgoing.ip_versions).", name)
	case errors.Is(err, resolver.ErrTimeout):
		return "The nameservers did not answer within dns.timeout: check /etc/resolv.conf and that DNS (port 53) is reachable, or raise dns.timeout."
	case errors.Is(err, resolver.ErrServerFailure):
		return fmt.Sprintf("The nameservers answered SERVFAIL or REFUSED for %s: its zone may be broken (DNSSEC, lame delegation); try again later or tell its administrator.", name)
	}
	return "Check this machine's DNS configuration."
}

func joinAddrs(addrs []netip.Addr) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}
