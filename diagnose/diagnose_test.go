package diagnose_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/testnet"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

const local = "local.example"

// world is a loopback DNS server and the CA both sides trust.
type world struct {
	dns *dnstest.Server
	ca  *testcert.CA
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ca, err := testcert.NewCA("diagnose test CA")
	if err != nil {
		t.Fatal(err)
	}
	return &world{dns: srv, ca: ca}
}

// publish makes domain's _xmpp-server SRV record point at ap.
func (w *world) publish(domain string, ap netip.AddrPort) {
	host := "xmpp." + domain
	w.dns.Set("_xmpp-server._tcp."+domain, dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV("_xmpp-server._tcp."+domain, 0, 5, ap.Port(), host)}})
	w.dns.Set(host, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(host, ap.Addr().String())}})
}

// leaf issues a certificate valid for 90 days unless o says otherwise, so
// that no check warns of an expiry the test did not ask for.
func leaf(t *testing.T, ca *testcert.CA, o testcert.Options) *testcert.Leaf {
	t.Helper()
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	l, err := ca.Leaf(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// peer starts a real Manager serving domain with cert, under mode. It
// reaches local at localAddr when that is valid.
func (w *world) peer(t *testing.T, domain string, cert *testcert.Leaf, mode string, localAddr netip.AddrPort) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := config.Default()
	s.UseStartTLS = mode
	rc := resolver.Config{Nameservers: []string{w.dns.Addr()}, Retries: 1}
	if localAddr.IsValid() {
		rc.Overrides = map[string]resolver.Override{local: {Addr: localAddr.Addr(), Port: int(localAddr.Port())}}
	}
	res, err := resolver.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s2s.New(s2s.Config{
		S2S:         s,
		IsLocal:     func(d string) bool { return d == domain },
		Deliver:     func(s2s.Stanza) {},
		Bounce:      func(s2s.Bounce) {},
		Logger:      slog.New(slog.DiscardHandler),
		Resolver:    res,
		RootCAs:     w.ca.Pool(),
		Certificate: starttls.StaticCert(cert.TLS),
	})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ln)
	t.Cleanup(func() { m.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// config is the diagnosis's configuration: mode, our certificate from the
// world's CA, the world's DNS.
func (w *world) config(t *testing.T, mode string, ours *testcert.Leaf) diagnose.Config {
	s := config.Default()
	s.UseStartTLS = mode
	c := diagnose.Config{S2S: s, Nameservers: []string{w.dns.Addr()}, RootCAs: w.ca.Pool(), Timeout: 5 * time.Second}
	c.S2S.DNS.Retries = 1
	if ours != nil {
		c.Certificate = starttls.StaticCert(ours.TLS)
	}
	return c
}

// noDialback is a server that speaks XMPP but offers nothing to
// authenticate with: no TLS, no dialback, no SASL, as a peer with dialback
// disabled and no certificate does.
func noDialback(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				if _, err := br.ReadString('>'); err != nil { // <?xml …?> or <stream:stream …>
					return
				}
				io.WriteString(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='x1' version='1.0'><stream:features/>`)
				io.Copy(io.Discard, br)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func find(rep *diagnose.Report, name string) (diagnose.Check, bool) {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return diagnose.Check{}, false
}

// TestCauses sets up one fault at a time against real peers on loopback and
// checks that the diagnosis names it: the check, its status, the step and
// words in what it found and in its advice.
func TestCauses(t *testing.T) {
	w := newWorld(t)
	ours := leaf(t, w.ca, testcert.Options{DNSNames: []string{local}})
	other, err := testcert.NewCA("a CA nobody trusts")
	if err != nil {
		t.Fatal(err)
	}
	good := func(d string) *testcert.Leaf { return leaf(t, w.ca, testcert.Options{DNSNames: []string{d}}) }

	tests := []struct {
		remote string
		setup  func(remote string, c *diagnose.Config)
		mode   string
		check  string // the check that names the cause
		status diagnose.Status
		step   s2s.Step
		detail string // in Detail
		advice string // in Advice
		can    bool   // CanFederate
	}{
		0: { // a working peer: everything ok but the attempt that was not asked for
			remote: "good.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, good(r), "required_trusted", netip.AddrPort{}))
			},
			check: "certificate chain", status: diagnose.OK, step: s2s.StepTLS, detail: "trusted", can: true,
		},
		1: { // no SRV record and no address
			remote: "nothing.example", mode: "required_trusted",
			setup: func(string, *diagnose.Config) {},
			check: "connection targets", status: diagnose.Failure, step: s2s.StepDNS, detail: "no such domain", advice: "does not exist in DNS",
		},
		2: { // no SRV record: the fallback port refuses
			remote: "nosrv.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				w.dns.Set(r, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(r, "127.0.0.1")}})
				c.S2S.Outgoing.Port = int(testnet.RefusedAddr(t).Port())
			},
			check: "SRV _xmpp-server._tcp.nosrv.example", status: diagnose.Warning, step: s2s.StepDNS,
			detail: "no SRV records", advice: "publish an SRV record",
		},
		3: { // a refused port
			remote: "refused.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) { w.publish(r, testnet.RefusedAddr(t)) },
			check: "connect xmpp.refused.example", status: diagnose.Failure, step: s2s.StepConnect,
			detail: "connection refused", advice: "Nothing listens",
		},
		4: { // a certificate for another name
			remote: "misnamed.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, good("elsewhere.example"), "required_trusted", netip.AddrPort{}))
			},
			check: "certificate name", status: diagnose.Failure, step: s2s.StepTLS,
			detail: "does not name misnamed.example; it names", advice: "naming misnamed.example",
		},
		5: { // an expired certificate
			remote: "expired.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				old := leaf(t, w.ca, testcert.Options{DNSNames: []string{r},
					NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-30 * 24 * time.Hour)})
				w.publish(r, w.peer(t, r, old, "required_trusted", netip.AddrPort{}))
			},
			check: "certificate expiry", status: diagnose.Failure, step: s2s.StepTLS, detail: "expired", advice: "Renew",
		},
		6: { // a certificate without clientAuth: a warning, federation works
			remote: "serveronly.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				l := leaf(t, w.ca, testcert.Options{DNSNames: []string{r}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				w.publish(r, w.peer(t, r, l, "required_trusted", netip.AddrPort{}))
			},
			check: "certificate usage", status: diagnose.Warning, step: s2s.StepTLS,
			detail: "[serverAuth]", advice: "clientAuth", can: true,
		},
		7: { // required_trusted against a peer whose CA we do not trust
			remote: "untrusted.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, leaf(t, other, testcert.Options{DNSNames: []string{r}}), "optional", netip.AddrPort{}))
			},
			check: "certificate chain", status: diagnose.Failure, step: s2s.StepTLS,
			detail: "not trusted", advice: `use_starttls = "required_trusted" refuses it`,
		},
		8: { // the same peer under "required": dialback will do, a warning
			remote: "untrusted2.example", mode: "required",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, leaf(t, other, testcert.Options{DNSNames: []string{r}}), "optional", netip.AddrPort{}))
			},
			check: "certificate chain", status: diagnose.Warning, step: s2s.StepTLS,
			detail: "not trusted", advice: "fall back to dialback", can: true,
		},
		9: { // a peer with dialback disabled and nothing else to offer
			remote: "nodialback.example", mode: "optional",
			setup: func(r string, c *diagnose.Config) { w.publish(r, noDialback(t)) },
			check: "methods offered", status: diagnose.Failure, step: s2s.StepAuth,
			detail: "neither Server Dialback nor SASL EXTERNAL", advice: "enable Server Dialback",
		},
		10: { // our own policy
			remote: "denied.example", mode: "required_trusted",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, good(r), "required_trusted", netip.AddrPort{}))
				c.S2S.HostPolicy = append(c.S2S.HostPolicy, config.HostPolicy{Host: r, Policy: "deny"})
			},
			check: "default_policy and host_policy", status: diagnose.Failure, step: s2s.StepPolicy,
			detail: "deny", advice: "host_policy",
		},
		11: { // a peer that requires TLS while we have it off
			remote: "needstls.example", mode: "false",
			setup: func(r string, c *diagnose.Config) {
				w.publish(r, w.peer(t, r, good(r), "required", netip.AddrPort{}))
			},
			check: "STARTTLS", status: diagnose.Failure, step: s2s.StepTLS,
			detail: "requires STARTTLS", advice: `set use_starttls to "optional"`,
		},
	}
	for i, tc := range tests {
		t.Run(strconv.Itoa(i)+"/"+tc.remote, func(t *testing.T) {
			c := w.config(t, tc.mode, ours)
			if tc.mode == "false" {
				c.Certificate = nil
			}
			tc.setup(tc.remote, &c)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := diagnose.Run(ctx, c, local, tc.remote)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			rep.WriteText(&text)
			got, ok := find(rep, tc.check)
			if !ok {
				for _, ch := range rep.Checks {
					if strings.HasPrefix(ch.Name, tc.check) {
						got, ok = ch, true
						break
					}
				}
			}
			if !ok {
				t.Fatalf("no check %q in\n%s", tc.check, text.String())
			}
			if got.Status != tc.status || got.Step != tc.step ||
				!strings.Contains(got.Detail, tc.detail) || !strings.Contains(got.Advice, tc.advice) {
				t.Errorf("check %q = %+v\nwant status %s, step %s, detail ~%q, advice ~%q\n%s",
					tc.check, got, tc.status, tc.step, tc.detail, tc.advice, text.String())
			}
			if rep.CanFederate() != tc.can {
				t.Errorf("CanFederate = %v, want %v\n%s", rep.CanFederate(), tc.can, text.String())
			}
			if !tc.can {
				first, _ := rep.FirstFailure()
				if !strings.Contains(rep.Summary(), first.Step.Title()+" failed") {
					t.Errorf("summary %q does not name the failed step %s", rep.Summary(), first.Step.Title())
				}
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestAuthentication makes the authentication attempt through a listener
// for the local domain that the peer reaches: with SASL EXTERNAL when both
// certificates are trusted, and with dialback (verified over the listener)
// when EXTERNAL is off.
func TestAuthentication(t *testing.T) {
	w := newWorld(t)
	ours := leaf(t, w.ca, testcert.Options{DNSNames: []string{local}})
	for i, tc := range []struct {
		noExternal bool
		want       string
	}{
		{false, "authenticated by sasl-external over TLS1.3"},
		{true, "authenticated by dialback over TLS1.3"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			remote := "peer" + strconv.Itoa(i) + ".example"
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			w.publish(remote, w.peer(t, remote, leaf(t, w.ca, testcert.Options{DNSNames: []string{remote}}),
				"required_trusted", ln.Addr().(*net.TCPAddr).AddrPort()))
			c := w.config(t, "required_trusted", ours)
			c.Listener = ln
			c.DisableSASLExternal = tc.noExternal
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := diagnose.Run(ctx, c, local, remote)
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			rep.WriteText(&text)
			got, ok := find(rep, "authentication attempt")
			if !ok || got.Status != diagnose.OK || got.Detail != tc.want {
				t.Errorf("attempt = %+v, want ok %q\n%s", got, tc.want, text.String())
			}
			if !rep.CanFederate() {
				t.Errorf("cannot federate:\n%s", text.String())
			}
		})
	}
}

// A failed attempt names the step it failed at, in the words a bounce uses.
func TestAuthenticationFails(t *testing.T) {
	w := newWorld(t)
	ours := leaf(t, w.ca, testcert.Options{DNSNames: []string{local}})
	remote := "refuses.example"
	w.publish(remote, w.peer(t, remote, leaf(t, w.ca, testcert.Options{DNSNames: []string{"elsewhere.example"}}), "required_trusted", netip.AddrPort{}))
	c := w.config(t, "required_trusted", ours)
	c.Authenticate = true
	rep, err := diagnose.Run(context.Background(), c, local, remote)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := find(rep, "authentication attempt")
	if !ok || got.Status != diagnose.Failure || got.Step != s2s.StepTLS || !strings.Contains(got.Detail, "TLS failed: ") || !strings.Contains(got.Detail, "certificate does not name the peer") {
		var text strings.Builder
		rep.WriteText(&text)
		t.Errorf("attempt = %+v, want a TLS failure\n%s", got, text.String())
	}
}

func TestUsage(t *testing.T) {
	for _, d := range [][2]string{{"", "x.example"}, {"a.example", "bad..domain"}} {
		if _, err := diagnose.Run(context.Background(), diagnose.Config{S2S: config.Default()}, d[0], d[1]); err == nil {
			t.Errorf("Run(%q, %q) accepted", d[0], d[1])
		}
	}
}
