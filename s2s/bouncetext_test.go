package s2s

import (
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/resolver"
)

// TestBounceTextNoResolverInternals: a user sends to a domain whose DNS
// fails. The bounce that goes back to the user says so without naming our
// nameserver; the error the host logs (Bounce.Err) still does.
func TestBounceTextNoResolverInternals(t *testing.T) {
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	fail := dnstest.Entry{RCode: dnsmessage.RCodeServerFailure}
	for _, name := range []string{"_xmpp-server._tcp.far.test", "_xmpps-server._tcp.far.test"} {
		srv.Set(name, dnsmessage.TypeSRV, fail)
	}
	srv.Set("far.test", dnsmessage.TypeA, fail)
	r, err := resolver.New(resolver.Config{Nameservers: []string{srv.Addr()}, IPVersions: []int{4}, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := newNode(t, listen(t), []string{"a.test"}, nil, withConfig(func(c *Config) { c.Resolver = r }))
	a.send(`<message from='u@a.test' to='v@far.test' id='m1'><body>hi</body></message>`)
	b := a.nextBounce()
	if b.Condition != "remote-server-timeout" {
		t.Fatalf("condition %s: %s", b.Condition, b.Text)
	}
	host, _, _ := net.SplitHostPort(srv.Addr())
	if strings.Contains(b.Text, host) || strings.Contains(b.Text, "last server") || strings.Contains(string(b.Reply()), host) {
		t.Fatalf("the bounce names our nameserver: %s", b.Text)
	}
	if !strings.Contains(b.Text, "far.test") {
		t.Fatalf("the bounce does not say what failed: %s", b.Text)
	}
	var de *resolver.DNSError
	if !errors.As(b.Err, &de) || !strings.Contains(b.Err.Error(), srv.Addr()) {
		t.Fatalf("Bounce.Err %v lost the nameserver", b.Err)
	}
}

// TestPublicText: a connection's local address is kept out too.
func TestPublicText(t *testing.T) {
	err := &net.OpError{Op: "write", Net: "tcp",
		Source: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000},
		Addr:   &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5269},
		Err:    errors.New("broken pipe")}
	wrapped := errors.Join(errors.New("x"), errors.Join(err))
	if got := publicText(wrapped); strings.Contains(got, "10.1.2.3") || !strings.Contains(got, "192.0.2.1:5269") {
		t.Fatalf("publicText = %q", got)
	}
}
