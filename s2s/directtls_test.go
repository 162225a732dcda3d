package s2s

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/testnet"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// srvRecord is one SRV record of b.test for the test DNS server.
type srvRecord struct {
	direct   bool // _xmpps-server (XEP-0368) rather than _xmpp-server
	priority uint16
	port     uint16
}

// dnsResolver starts a DNS server on loopback that publishes records for
// b.test, and returns a Manager option using it instead of overrides.
func dnsResolver(t *testing.T, records ...srvRecord) nodeOpt {
	t.Helper()
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	answers := map[string][]dnsmessage.Resource{}
	for i, r := range records {
		name := "_xmpp-server._tcp.b.test"
		if r.direct {
			name = "_xmpps-server._tcp.b.test"
		}
		host := "h" + strconv.Itoa(i) + ".b.test"
		answers[name] = append(answers[name], dnstest.SRV(name, r.priority, 0, r.port, host))
		srv.Set(host, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(host, "127.0.0.1")}})
	}
	for name, a := range answers {
		srv.Set(name, dnsmessage.TypeSRV, dnstest.Entry{Answers: a})
	}
	// b.test exists in the zone even when one service has no record:
	// the other lookup then gets NODATA, as from a real zone.
	srv.Set("b.test", dnsmessage.TypeA, dnstest.Entry{})
	r, err := resolver.New(resolver.Config{Nameservers: []string{srv.Addr()}, IPVersions: []int{4}})
	if err != nil {
		t.Fatal(err)
	}
	return withConfig(func(c *Config) { c.Resolver = r })
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func port(ln net.Listener) uint16 { return addrOf(ln).Port() }

// closedPort returns a loopback port that refuses connections.
func closedPort(t *testing.T) uint16 { return testnet.RefusedAddr(t).Port() }

// directNodes starts a.test, which finds b.test through the given SRV
// records, and b.test serving plain streams on plain and direct TLS on
// direct.
func directNodes(t *testing.T, aOpts, bOpts []nodeOpt, records func(plain, direct uint16) []srvRecord) (a, b *node, plain, direct *countingListener) {
	t.Helper()
	la := listen(t)
	plain = &countingListener{Listener: listen(t)}
	direct = &countingListener{Listener: listen(t)}
	a = newNode(t, la, []string{"a.test"}, nil, append([]nodeOpt{dnsResolver(t, records(port(plain), port(direct))...)}, aOpts...)...)
	b = newNode(t, plain, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, bOpts...)
	go b.m.ServeTLS(direct)
	return a, b, plain, direct
}

// TestDirectTLSPriority mixes _xmpps-server and _xmpp-server records by
// priority: the best reachable target wins whatever its kind, and
// use_starttls = "false" never uses direct TLS.
func TestDirectTLSPriority(t *testing.T) {
	for i, tc := range []struct {
		mode       string
		records    func(plain, direct uint16) []srvRecord
		viaDirect  bool
		wantBounce bool
	}{
		{mode: "optional", viaDirect: true, records: func(p, d uint16) []srvRecord {
			return []srvRecord{{direct: true, priority: 10, port: d}, {priority: 20, port: p}}
		}},
		{mode: "optional", records: func(p, d uint16) []srvRecord {
			return []srvRecord{{direct: true, priority: 20, port: d}, {priority: 10, port: p}}
		}},
		// The preferred direct target is down: STARTTLS next.
		{mode: "required", records: func(p, d uint16) []srvRecord {
			return []srvRecord{{direct: true, priority: 5, port: closedPort(t)}, {direct: true, priority: 30, port: d}, {priority: 20, port: p}}
		}},
		// The preferred STARTTLS target is down: direct TLS next.
		{mode: "required_trusted", viaDirect: true, records: func(p, d uint16) []srvRecord {
			return []srvRecord{{priority: 5, port: closedPort(t)}, {direct: true, priority: 30, port: d}}
		}},
		{mode: "false", records: func(p, d uint16) []srvRecord {
			return []srvRecord{{direct: true, priority: 10, port: d}, {priority: 20, port: p}}
		}},
		{mode: "false", wantBounce: true, records: func(p, d uint16) []srvRecord {
			return []srvRecord{{direct: true, priority: 10, port: d}}
		}},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.mode, func(t *testing.T) {
			bMode := tc.mode
			if bMode == "false" {
				bMode = "optional" // b serves direct TLS; a must not use it
			}
			a, b, plain, direct := directNodes(t, []nodeOpt{withMode(tc.mode)}, []nodeOpt{withMode(bMode)}, tc.records)
			a.send(msgAB)
			if tc.wantBounce {
				bo := a.nextBounce()
				if bo.Condition != stanza.RemoteServerNotFound {
					t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
				}
				if direct.n.Load() != 0 {
					t.Fatal("direct TLS used with use_starttls = false")
				}
				return
			}
			if got := b.nextDelivered(); got.ID != "m1" {
				t.Fatalf("delivered %+v", got)
			}
			if got := direct.n.Load() == 1; got != tc.viaDirect {
				t.Fatalf("direct accepted %d, plain %d; want via direct %v", direct.n.Load(), plain.n.Load(), tc.viaDirect)
			}
			links := outgoing(a.m.Links())
			if len(links) != 1 || (links[0].TLSVersion != 0) != (tc.mode != "false") || links[0].Auth != AuthDialback {
				t.Fatalf("links %+v", links)
			}
		})
	}
}

// TestDirectTLSClientHello checks what a direct TLS ClientHello carries:
// SNI the remote domain, ALPN xmpp-server.
func TestDirectTLSClientHello(t *testing.T) {
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"b.test"}})
	if err != nil {
		t.Fatal(err)
	}
	hellos := make(chan *tls.ClientHelloInfo, 1)
	negotiated := make(chan string, 1)
	ln := listen(t)
	tln := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{leaf.TLS},
		NextProtos:   []string{starttls.ALPN},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hellos <- h
			return nil, nil
		},
	})
	go func() {
		c, err := tln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() == nil {
			negotiated <- tc.ConnectionState().NegotiatedProtocol
		}
	}()
	a := newNode(t, listen(t), []string{"a.test"}, nil, withMode("required_trusted"),
		dnsResolver(t, srvRecord{direct: true, priority: 1, port: port(ln)}))
	a.send(msgAB)
	var h *tls.ClientHelloInfo
	select {
	case h = <-hellos:
	case <-time.After(wait):
		t.Fatal("no ClientHello")
	}
	if h.ServerName != "b.test" || len(h.SupportedProtos) != 1 || h.SupportedProtos[0] != starttls.ALPN {
		t.Fatalf("SNI %q, ALPN %q", h.ServerName, h.SupportedProtos)
	}
	select {
	case p := <-negotiated:
		if p != starttls.ALPN {
			t.Fatalf("negotiated %q", p)
		}
	case <-time.After(wait):
		t.Fatal("no handshake")
	}
	// The fake closes after the handshake: the stanza comes back.
	if bo := a.nextBounce(); bo.Condition != stanza.RemoteServerNotFound {
		t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
	}
}

// TestDirectTLSModes runs a.test to b.test over direct TLS only, for the
// use_starttls modes of each side and certificates of each kind.
func TestDirectTLSModes(t *testing.T) {
	selfSigned := func(d string) nodeOpt {
		return withConfig(func(c *Config) {
			l, err := testcert.SelfSigned(testcert.Options{DNSNames: []string{d}})
			if err != nil {
				t.Fatal(err)
			}
			c.Certificate = starttls.StaticCert(l.TLS)
		})
	}
	for i, tc := range []struct {
		out, in string
		aOpts   []nodeOpt
		bOpts   []nodeOpt
		ok      bool
	}{
		{out: "optional", in: "optional", ok: true},
		{out: "required", in: "required", ok: true},
		{out: "required_trusted", in: "required_trusted", ok: true},
		{out: "optional", in: "required_trusted", ok: true},
		// Certificates are not checked outside required_trusted: dialback
		// authenticates.
		{out: "required", in: "required", aOpts: []nodeOpt{selfSigned("a.test")}, bOpts: []nodeOpt{selfSigned("b.test")}, ok: true},
		// required_trusted checks the server it dials...
		{out: "required_trusted", in: "optional", bOpts: []nodeOpt{selfSigned("b.test")}},
		{out: "required_trusted", in: "optional", bOpts: []nodeOpt{certFor("other.test")}},
		// ...and, incoming, the chain at the handshake and the name at the
		// stream header.
		{out: "optional", in: "required_trusted", aOpts: []nodeOpt{selfSigned("a.test")}},
		{out: "optional", in: "required_trusted", aOpts: []nodeOpt{certFor("other.test")}},
		// false: no TLS at all, so the direct TLS listener refuses.
		{out: "optional", in: "false"},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.out+"->"+tc.in, func(t *testing.T) {
			t.Parallel()
			only := func(_, d uint16) []srvRecord { return []srvRecord{{direct: true, priority: 1, port: d}} }
			a, b, _, _ := directNodes(t, append([]nodeOpt{withMode(tc.out)}, tc.aOpts...), append([]nodeOpt{withMode(tc.in)}, tc.bOpts...), only)
			a.send(msgAB)
			if !tc.ok {
				if bo := a.nextBounce(); bo.Condition != stanza.RemoteServerNotFound {
					t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
				}
				if l := b.m.Links(); len(l) != 0 {
					t.Fatalf("b has links %+v", l)
				}
				return
			}
			if got := b.nextDelivered(); got.ID != "m1" {
				t.Fatalf("delivered %+v", got)
			}
			for _, l := range append(a.m.Links(), b.m.Links()...) {
				if l.TLSVersion == 0 || l.Auth != AuthDialback {
					t.Errorf("link %+v", l)
				}
			}
		})
	}
}

// certFor makes a node present a certificate from the test CA for another
// name than its own.
func certFor(name string) nodeOpt {
	return withConfig(func(c *Config) {
		l, err := testCA().Leaf(testcert.Options{DNSNames: []string{name}})
		if err != nil {
			panic(err)
		}
		c.Certificate = starttls.StaticCert(l.TLS)
	})
}

// TestServeMixed serves plain and direct TLS streams on one port.
func TestServeMixed(t *testing.T) {
	for i, direct := range []bool{true, false} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			la, lb, lm := listen(t), listen(t), listen(t)
			a := newNode(t, la, []string{"a.test"}, nil, withMode("required_trusted"),
				dnsResolver(t, srvRecord{direct: direct, priority: 1, port: port(lm)}))
			b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, withMode("required_trusted"))
			go b.m.ServeMixed(lm)
			a.send(msgAB)
			if got := b.nextDelivered(); got.ID != "m1" {
				t.Fatalf("delivered %+v", got)
			}
			if l := outgoing(a.m.Links()); len(l) != 1 || l[0].TLSVersion == 0 {
				t.Fatalf("links %+v", l)
			}
		})
	}
}

// TestDirectTLSHeaderNotProven: in required_trusted the direct TLS handshake
// checks the chain only; a 'from' the certificate does not name is then
// refused with the stream error not-authorized, after our header.
func TestDirectTLSHeaderNotProven(t *testing.T) {
	for i, tc := range []struct {
		from string
		want string
	}{
		{from: "a.test", want: "not-authorized"},
		{from: "other.test", want: ""}, // proven: the stream goes on until we close it
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			lb, ld := listen(t), listen(t)
			b := newNode(t, lb, []string{"b.test"}, nil, withMode("required_trusted"))
			go b.m.ServeTLS(ld)
			leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"other.test"}})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := tls.Dial("tcp", ld.Addr().String(), &tls.Config{
				ServerName: "b.test", RootCAs: testCA().Pool(), Certificates: []tls.Certificate{leaf.TLS},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wait))
			p := &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.DefaultLimits)}
			p.write(headerString(tc.from, "b.test"))
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatalf("our header: %v", err)
			}
			if tc.want == "" {
				if _, err := p.r.Next(); err != nil {
					t.Fatalf("features: %v", err)
				}
				p.write("</stream:stream>")
			}
			if cond := p.streamError(); cond != tc.want {
				t.Fatalf("stream error %q, want %q", cond, tc.want)
			}
		})
	}
}
