package interop

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
)

// listenDirect reserves a loopback port for our direct TLS listener: the
// peer's configuration names it before our Manager exists. Closing it is
// registered now, so that it is not left open when the test fails before
// serveDirect.
func listenDirect(t *testing.T) *countingListener {
	t.Helper()
	ln := listenOurs(t)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveDirect serves XEP-0368 direct TLS for our Manager on ln.
func serveDirect(t *testing.T, o *ours, ln *countingListener) {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- o.m.ServeTLS(ln) }()
	// This cleanup runs before the Manager's Shutdown (cleanups run last
	// registered first): closing the listener ends ServeTLS on its own.
	t.Cleanup(func() {
		ln.Close()
		if err := <-served; err != nil && !errors.Is(err, s2s.ErrClosed) && !errors.Is(err, net.ErrClosed) {
			t.Logf("ServeTLS: %v", err)
		}
	})
}

// directOnly returns a Manager option whose resolver asks a DNS server on
// loopback that publishes, for peer, only an _xmpps-server._tcp SRV record
// pointing at port: our outgoing link can reach the peer with direct TLS
// or not at all. An address override cannot say "direct", hence the DNS.
// The returned function counts the direct-TLS SRV queries made.
func directOnly(t *testing.T, peer string, port int) (func(*s2s.Config), func() int) {
	t.Helper()
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	direct := "_xmpps-server._tcp." + peer
	host := "direct." + peer
	srv.Set(direct, dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV(direct, 0, 0, uint16(port), host),
	}})
	srv.Set(host, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(host, "127.0.0.1")}})
	// The STARTTLS service exists but has no record (NODATA), as in a zone
	// that publishes only direct TLS.
	srv.Set("_xmpp-server._tcp."+peer, dnsmessage.TypeSRV, dnstest.Entry{})
	r, err := resolver.New(resolver.Config{Nameservers: []string{srv.Addr()}, IPVersions: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *s2s.Config) { c.Resolver = r },
		func() int { return srv.Count(direct, dnsmessage.TypeSRV) }
}

// directChecks asserts that the peer reached us only through the direct
// TLS listener and that we resolved the peer's direct TLS service.
func directChecks(t *testing.T, plain, direct *countingListener, queries func() int) {
	t.Helper()
	if n := plain.accepted.Load(); n != 0 {
		t.Errorf("the peer opened %d connections to our STARTTLS port, want none", n)
	}
	if n := direct.accepted.Load(); n == 0 {
		t.Errorf("the peer never connected to our direct TLS port")
	}
	if queries() == 0 {
		t.Errorf("we never looked up the peer's _xmpps-server._tcp record")
	}
}

// TestProsodyDirectTLS: Prosody listens on s2s_direct_tls_ports and is told
// to reach us only at our ServeTLS listener; we reach it only through an
// _xmpps-server SRV record. Both links are direct TLS with ALPN
// "xmpp-server", and with both certificates trusted on both sides, each
// authenticates with SASL EXTERNAL inside it.
func TestProsodyDirectTLS(t *testing.T) {
	plain, direct := listenOurs(t), listenDirect(t)
	p := &prosodyPeer{Prosody: StartProsody(t, ProsodyConfig{
		Domain:       prosodyDomain,
		TLS:          "required",
		SecureAuth:   true,
		CertPEM:      leafFor(t, prosodyDomain).PEM,
		CAPEM:        testCA().PEM(),
		SASLExternal: true,
		DirectTLS:    true,
		DirectRoutes: []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: direct.port()}},
	}), pings: make(chan pingResult, 1)}
	useDNS, queries := directOnly(t, prosodyDomain, p.DirectPort)
	o := startOurs(t, plain, "required_trusted", prosodyDomain, p.Port, withSASLExternal, useDNS)
	serveDirect(t, o, direct)

	exchange(t, o, p, "direct")
	pOut, pIn := prosodyAgrees(t, o, p, s2s.AuthSASLExternal, s2s.AuthSASLExternal)
	directChecks(t, plain, direct, queries)
	// Prosody dialled our ServeTLS listener: it offered ALPN xmpp-server
	// and SNI go.test, and we selected xmpp-server.
	if pOut.ALPN != "xmpp-server" || pOut.SNI != ourDomain {
		t.Errorf("Prosody's stream to us: ALPN %q, SNI %q; want xmpp-server, %s", pOut.ALPN, pOut.SNI, ourDomain)
	}
	// We dialled Prosody's direct TLS port with SNI prosody.test. (Prosody
	// 0.12 configures no ALPN on that listener, so it selects none; that we
	// offer xmpp-server is covered by the s2s package's own tests.)
	if pIn.SNI != prosodyDomain {
		t.Errorf("we sent SNI %q, want %q", pIn.SNI, prosodyDomain)
	}
}

// TestEjabberdDirectTLS: ejabberd has a second ejabberd_s2s_in listener
// with tls: true and an _xmpps-server record for us pointing at our
// ServeTLS listener; we reach it only through its direct TLS port. Both
// streams run direct TLS; authentication is as with STARTTLS (EXTERNAL
// from ejabberd, dialback after a refused EXTERNAL from us).
func TestEjabberdDirectTLS(t *testing.T) {
	plain, direct := listenOurs(t), listenDirect(t)
	e := &ejabberdPeer{Ejabberd: StartEjabberd(t, EjabberdConfig{
		Domain:       ejabberdDomain,
		TLS:          "optional",
		CertPEM:      leafFor(t, ejabberdDomain).PEM,
		DirectTLS:    true,
		DirectRoutes: []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: direct.port()}},
	})}
	useDNS, queries := directOnly(t, ejabberdDomain, e.DirectPort)
	o := startOurs(t, plain, "required_trusted", ejabberdDomain, e.Port, withSASLExternal, useDNS)
	serveDirect(t, o, direct)

	exchange(t, o, e, "ej-direct")
	out, ins := ourLinks(t, o, ejabberdDomain)
	wantAuth(t, out, ins, s2s.AuthDialback, s2s.AuthSASLExternal)
	ejabberdAgrees(t, e, false)
	directChecks(t, plain, direct, queries)
}
