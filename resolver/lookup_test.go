package resolver_test

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/resolver"
)

// The lookups a diagnosis shows one by one answer what DNS published, apart
// from Resolve's merge.
func TestLookups(t *testing.T) {
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Set("_xmpp-server._tcp.example.net", dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV("_xmpp-server._tcp.example.net", 5, 10, 5270, "xmpp.example.net"),
	}})
	srv.Set("xmpp.example.net", dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.A("xmpp.example.net", "127.0.0.2"),
	}})
	r, err := resolver.New(resolver.Config{
		Nameservers: []string{srv.Addr()},
		Retries:     1,
		Overrides:   map[string]resolver.Override{"Fixed.Example.": {Addr: netip.MustParseAddr("127.0.0.9"), Port: 5999}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	got, err := r.LookupSRV(ctx, "Example.NET", false)
	want := []resolver.SRV{{Target: "xmpp.example.net", Port: 5270, Priority: 5, Weight: 10}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LookupSRV(xmpp) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := r.LookupSRV(ctx, "example.net", true); !errors.Is(err, resolver.ErrNotFound) {
		t.Errorf("LookupSRV(xmpps) = %+v, %v; want ErrNotFound", got, err)
	}
	addrs, err := r.LookupAddrs(ctx, "xmpp.example.net")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("LookupAddrs = %v, %v", addrs, err)
	}
	if ap, ok := r.Override("fixed.example"); !ok || ap != netip.MustParseAddrPort("127.0.0.9:5999") {
		t.Errorf("Override = %v, %v", ap, ok)
	}
	if _, ok := r.Override("example.net"); ok {
		t.Error("Override(example.net) found one")
	}
	if r.Port() != resolver.DefaultPort {
		t.Errorf("Port = %d", r.Port())
	}
}
