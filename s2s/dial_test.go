package s2s

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// srvTarget is one SRV record of b.test in a TestTargets case: its host
// gets an A record 127.0.0.1, the port is the listener's.
type srvTarget struct {
	direct bool // _xmpps-server instead of _xmpp-server
	port   uint16
}

// TestTargets resolves b.test through the loopback DNS server and checks
// what the link does with misbehaving DNS and targets: every step has its
// own bound (dns.timeout per attempt longer than connection_timeout here,
// as with the defaults), and a target that fails at TCP, TLS or stream
// negotiation gives way to the next one; when all fail, the bounce lists
// each.
func TestTargets(t *testing.T) {
	const (
		dnsTimeout  = 400 * time.Millisecond
		connTimeout = 300 * time.Millisecond
		negTimeout  = 2 * time.Second
	)
	db := string(dialbackFeature)
	for i, tc := range []struct {
		name   string
		mode   string
		faults []dnstest.Fault // of the SRV query
		// first returns the ports of the targets before b's own; b's
		// port is given so that a case can point a direct TLS target at
		// b's plaintext listener.
		first  func(t *testing.T, b *node) []srvTarget
		noLive bool             // b.test has no working target
		cond   stanza.Condition // the bounce when noLive
		text   []string         // in the bounce's text
	}{
		0: {name: "DNS first attempt dropped", faults: []dnstest.Fault{dnstest.Drop}},
		1: {name: "DNS SERVFAIL then answer", faults: []dnstest.Fault{dnstest.ServFail, dnstest.Drop}},
		2: {name: "refusing first target", first: func(t *testing.T, b *node) []srvTarget {
			return []srvTarget{{port: closedPort(t)}}
		}},
		3: {name: "silent first target", first: func(t *testing.T, b *node) []srvTarget {
			return []srvTarget{{port: addrOf(stallListener(t)).Port()}}
		}},
		4: {name: "bad TLS first target", mode: "required", first: func(t *testing.T, b *node) []srvTarget {
			evil := newMITM(t, db+tlsRequired, starttls.Proceed+"\x16\x03\x01\x00\x05hello")
			return []srvTarget{{port: addrOf(evil.ln).Port()}}
		}},
		5: {name: "xmpps failing, then xmpp", mode: "required", first: func(t *testing.T, b *node) []srvTarget {
			return []srvTarget{{direct: true, port: b.addr.Port()}} // TLS to a plaintext port
		}},
		6: {name: "every target silent", noLive: true, cond: stanza.RemoteServerTimeout,
			first: func(t *testing.T, b *node) []srvTarget {
				return []srvTarget{{port: addrOf(stallListener(t)).Port()}, {port: addrOf(stallListener(t)).Port()}}
			},
			text: []string{"t0.b.test", "t1.b.test", "negotiation timeout"}},
		7: {name: "refused and silent", noLive: true, cond: stanza.RemoteServerNotFound,
			first: func(t *testing.T, b *node) []srvTarget {
				return []srvTarget{{port: closedPort(t)}, {port: addrOf(stallListener(t)).Port()}}
			},
			text: []string{"t0.b.test", "refused", "t1.b.test", "negotiation timeout"}},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = "false"
			}
			dns, err := dnstest.NewServer("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dns.Close() })
			res, err := resolver.New(resolver.Config{Nameservers: []string{dns.Addr()}, Timeout: dnsTimeout, Retries: 3})
			if err != nil {
				t.Fatal(err)
			}
			la, lb := listen(t), listen(t)
			a := newNode(t, la, []string{"a.test"}, nil, withMode(mode),
				withS2S(func(s *config.S2S) { s.Outgoing.ConnectionTimeout = connTimeout }),
				withConfig(func(c *Config) { c.Resolver = res; c.NegotiationTimeout = negTimeout }))
			b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, withMode(mode))

			var targets []srvTarget
			if tc.first != nil {
				targets = tc.first(t, b)
			}
			if !tc.noLive {
				targets = append(targets, srvTarget{port: b.addr.Port()})
			}
			var plain, direct []dnsmessage.Resource
			for j, tg := range targets {
				host := fmt.Sprintf("t%d.b.test", j)
				dns.Set(host, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(host, "127.0.0.1")}})
				if tg.direct {
					direct = append(direct, dnstest.SRV("_xmpps-server._tcp.b.test", uint16(j), 0, tg.port, host))
				} else {
					plain = append(plain, dnstest.SRV("_xmpp-server._tcp.b.test", uint16(j), 0, tg.port, host))
				}
			}
			dns.Set("_xmpp-server._tcp.b.test", dnsmessage.TypeSRV, dnstest.Entry{Answers: plain, Faults: tc.faults})
			if len(direct) > 0 {
				dns.Set("_xmpps-server._tcp.b.test", dnsmessage.TypeSRV, dnstest.Entry{Answers: direct})
			}

			a.send(`<message from='u@a.test' to='v@b.test' id='m1'/>`)
			if !tc.noLive {
				select {
				case s := <-b.delivered:
					if s.ID != "m1" {
						t.Fatalf("delivered %q", s.ID)
					}
				case bo := <-a.bounced:
					t.Fatalf("bounced: %s: %s", bo.Condition, bo.Text)
				case <-time.After(wait):
					t.Fatal("nothing delivered")
				}
				if n := dns.Count("_xmpp-server._tcp.b.test", dnsmessage.TypeSRV); len(tc.faults) > 0 && n != len(tc.faults)+1 {
					t.Errorf("%d SRV queries, want %d", n, len(tc.faults)+1)
				}
				return
			}
			bo := a.nextBounce()
			if bo.Condition != tc.cond {
				t.Errorf("bounce %s, want %s: %s", bo.Condition, tc.cond, bo.Text)
			}
			for _, w := range tc.text {
				if !strings.Contains(bo.Text, w) {
					t.Errorf("bounce text %q lacks %q", bo.Text, w)
				}
			}
		})
	}
}
