package dnstest

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// The helpers below build answer records with a TTL of 300 and class IN.
// They panic on a malformed name or address: they take test literals.

func header(name string, typ dnsmessage.Type) dnsmessage.ResourceHeader {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return dnsmessage.ResourceHeader{
		Name:  dnsmessage.MustNewName(name),
		Type:  typ,
		Class: dnsmessage.ClassINET,
		TTL:   300,
	}
}

// A returns an A record for name with the IPv4 address addr.
func A(name, addr string) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: header(name, dnsmessage.TypeA),
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(addr).As4()},
	}
}

// AAAA returns an AAAA record for name with the IPv6 address addr.
func AAAA(name, addr string) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: header(name, dnsmessage.TypeAAAA),
		Body:   &dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(addr).As16()},
	}
}

// SRV returns an SRV record for name; target "." says the service is not
// offered.
func SRV(name string, priority, weight, port uint16, target string) dnsmessage.Resource {
	if !strings.HasSuffix(target, ".") {
		target += "."
	}
	return dnsmessage.Resource{
		Header: header(name, dnsmessage.TypeSRV),
		Body: &dnsmessage.SRVResource{
			Priority: priority,
			Weight:   weight,
			Port:     port,
			Target:   dnsmessage.MustNewName(target),
		},
	}
}

// CNAME returns a CNAME record making name an alias of target.
func CNAME(name, target string) dnsmessage.Resource {
	if !strings.HasSuffix(target, ".") {
		target += "."
	}
	return dnsmessage.Resource{
		Header: header(name, dnsmessage.TypeCNAME),
		Body:   &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(target)},
	}
}
