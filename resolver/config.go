package resolver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// Defaults of the Config fields, from MongooseIM's [s2s] options.
const (
	DefaultPort    = 5269             // outgoing.port
	DefaultTimeout = 10 * time.Second // dns.timeout
	DefaultRetries = 2                // dns.retries
)

// Override is the address option for one remote domain: connect here and
// ask DNS nothing.
type Override struct {
	Addr netip.Addr // the address to connect to; required
	Port int        // the port; 0 means Config.Port
}

// Config holds the resolver's options. The zero value is usable: every field
// says its default. New copies what it needs, so a Config may be reused.
type Config struct {
	// Overrides maps remote domains to fixed addresses (the address
	// option). Keys are normalised by New, so "Bücher.Example." and
	// "xn--bcher-kva.example" are the same key.
	Overrides map[string]Override
	// Port is outgoing.port, used for overrides without a port and for the
	// A/AAAA fallback when there is no SRV record; 0 means DefaultPort.
	Port int
	// IPVersions is outgoing.ip_versions: which address families to look
	// up (A for 4, AAAA for 6) and in which order; nil means [4, 6].
	IPVersions []int
	// Timeout is dns.timeout, the limit of one query attempt; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Retries is dns.retries, the number of attempts of each query,
	// counting the first; 0 means DefaultRetries.
	Retries int
	// Nameservers are the recursive servers to ask, "ip:port" or "ip"
	// (port 53), used in turn, one per attempt. Empty means the nameserver
	// lines of /etc/resolv.conf, read once by New.
	Nameservers []string
	// Rand returns a uniformly random int in [0, n); it orders SRV records
	// of equal priority by weight. Nil means math/rand/v2.IntN. Calls are
	// serialised, so a *rand.Rand's IntN method with a fixed seed may be
	// used to make the order reproducible.
	Rand func(n int) int
}

// settings are a validated, defaulted Config.
type settings struct {
	overrides map[string]netip.AddrPort
	port      uint16
	families  []int
	client    client
	randN     func(int) int
}

func (c Config) settings(resolvConf string) (settings, error) {
	s := settings{
		port:     DefaultPort,
		families: []int{4, 6},
		randN:    rand.IntN,
		client:   client{timeout: DefaultTimeout, attempts: DefaultRetries},
	}
	if c.Port < 0 || c.Port > 65535 {
		return s, fmt.Errorf("resolver: port %d out of range", c.Port)
	}
	if c.Port != 0 {
		s.port = uint16(c.Port)
	}
	if c.IPVersions != nil {
		if len(c.IPVersions) == 0 {
			return s, fmt.Errorf("resolver: ip_versions is empty")
		}
		for i, v := range c.IPVersions {
			if v != 4 && v != 6 {
				return s, fmt.Errorf("resolver: ip_versions: %d is not 4 or 6", v)
			}
			if slices.Contains(c.IPVersions[:i], v) {
				return s, fmt.Errorf("resolver: ip_versions: %d listed twice", v)
			}
		}
		s.families = slices.Clone(c.IPVersions)
	}
	if c.Timeout < 0 {
		return s, fmt.Errorf("resolver: negative DNS timeout %v", c.Timeout)
	}
	if c.Timeout != 0 {
		s.client.timeout = c.Timeout
	}
	if c.Retries < 0 {
		return s, fmt.Errorf("resolver: negative DNS retries %d", c.Retries)
	}
	if c.Retries != 0 {
		s.client.attempts = c.Retries
	}
	if c.Rand != nil {
		s.randN = c.Rand
	}

	for _, ns := range c.Nameservers {
		ap, err := netip.ParseAddrPort(ns)
		if err != nil {
			a, err2 := netip.ParseAddr(ns)
			if err2 != nil {
				return s, fmt.Errorf("resolver: nameserver %q: %w", ns, err)
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		s.client.servers = append(s.client.servers, net.JoinHostPort(ap.Addr().String(), fmt.Sprint(ap.Port())))
	}
	if len(s.client.servers) == 0 {
		servers, err := readResolvConf(resolvConf)
		if err != nil {
			return s, fmt.Errorf("resolver: reading nameservers: %w", err)
		}
		s.client.servers = servers
	}

	s.overrides = make(map[string]netip.AddrPort, len(c.Overrides))
	for name, o := range c.Overrides {
		d, err := domain.Normalize(name)
		if err != nil {
			return s, fmt.Errorf("resolver: address override: %w", err)
		}
		if !o.Addr.IsValid() {
			return s, fmt.Errorf("resolver: address override for %s has no IP address", d)
		}
		if o.Port < 0 || o.Port > 65535 {
			return s, fmt.Errorf("resolver: address override for %s: port %d out of range", d, o.Port)
		}
		port := s.port
		if o.Port != 0 {
			port = uint16(o.Port)
		}
		if _, dup := s.overrides[d]; dup {
			return s, fmt.Errorf("resolver: two address overrides for %s", d)
		}
		s.overrides[d] = netip.AddrPortFrom(o.Addr.Unmap(), port)
	}
	return s, nil
}
