package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/resolver"
)

// A remote domain that publishes both a direct TLS and a STARTTLS service.
// The example asks a DNS server on loopback; a real one uses the system's.
func ExampleDNS_Resolve() {
	dns, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer dns.Close()
	dns.Set("_xmpps-server._tcp.example.org", dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV("_xmpps-server._tcp.example.org", 5, 0, 5270, "xmpp.example.org"),
	}})
	dns.Set("_xmpp-server._tcp.example.org", dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV("_xmpp-server._tcp.example.org", 10, 0, 5269, "xmpp.example.org"),
	}})
	dns.Set("xmpp.example.org", dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.A("xmpp.example.org", "192.0.2.1"),
	}})
	dns.Set("xmpp.example.org", dnsmessage.TypeAAAA, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.AAAA("xmpp.example.org", "2001:db8::1"),
	}})

	r, err := resolver.New(resolver.Config{
		Nameservers: []string{dns.Addr()},
		IPVersions:  []int{6, 4},
		Timeout:     5 * time.Second,
		Retries:     2,
	})
	if err != nil {
		panic(err)
	}
	targets, err := r.Resolve(context.Background(), "example.org")
	if err != nil {
		panic(err)
	}
	for _, t := range targets {
		fmt.Println(t)
	}
	// Output:
	// xmpp.example.org [2001:db8::1]:5270 (direct TLS)
	// xmpp.example.org 192.0.2.1:5270 (direct TLS)
	// xmpp.example.org [2001:db8::1]:5269 (STARTTLS)
	// xmpp.example.org 192.0.2.1:5269 (STARTTLS)
}

// An address override answers without DNS; a domain that does not exist
// gives an error the caller can tell apart.
func ExampleDNS_Resolve_errors() {
	dns, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer dns.Close()
	r, err := resolver.New(resolver.Config{
		Nameservers: []string{dns.Addr()},
		Overrides: map[string]resolver.Override{
			"partner.example": {Addr: netip.MustParseAddr("192.0.2.7"), Port: 5271},
		},
	})
	if err != nil {
		panic(err)
	}
	targets, _ := r.Resolve(context.Background(), "Partner.Example")
	fmt.Println(targets)

	_, err = r.Resolve(context.Background(), "nowhere.example")
	switch {
	case errors.Is(err, resolver.ErrTimeout), errors.Is(err, resolver.ErrServerFailure):
		fmt.Println("remote-server-timeout")
	case errors.Is(err, resolver.ErrNotFound), errors.Is(err, resolver.ErrNoService):
		fmt.Println("remote-server-not-found")
	}
	// Output:
	// [partner.example 192.0.2.7:5271 (STARTTLS)]
	// remote-server-not-found
}

// Dial tries the targets in order; here the first refuses.
func ExampleDialer_Dial() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	closed.Close()

	targets := []resolver.Target{
		{Host: "down.example.org", Addr: netip.MustParseAddrPort(closed.Addr().String())},
		{Host: "up.example.org", Addr: netip.MustParseAddrPort(l.Addr().String())},
	}
	d := resolver.Dialer{Timeout: 10 * time.Second}
	conn, target, err := d.Dial(context.Background(), targets)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Println(target.Host, target.Direct)
	// Output:
	// up.example.org false
}
