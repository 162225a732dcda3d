package s2s

import (
	"crypto/tls"
	"net/netip"
	"sync"
	"testing"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// switchingCert is a certificate source the test changes while the
// Manager runs (a renewal, or a host that serves domains under several
// certificates over time).
type switchingCert struct {
	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *switchingCert) set(l *testcert.Leaf) {
	s.mu.Lock()
	s.cert = &l.TLS
	s.mu.Unlock()
}

func leafFor(t *testing.T, names ...string) *testcert.Leaf {
	t.Helper()
	l, err := testCA().Leaf(testcert.Options{DNSNames: names})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *switchingCert) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, nil
}

// pairLink returns n's link for the pair in direction dir.
func pairLink(t *testing.T, n *node, dir Direction, local, remote string) LinkInfo {
	t.Helper()
	for _, l := range n.m.Links() {
		if l.Direction == dir && l.Local == local && l.Remote == remote {
			return l
		}
	}
	t.Fatalf("no %v link %s -> %s in %+v", dir, local, remote, n.m.Links())
	return LinkInfo{}
}

// TestTLSResumptionExternal: with one Manager serving several local
// domains, a new link resumes the TLS session of an earlier one only when
// it presents the same certificate, so that SASL EXTERNAL on the receiving
// side (which reads the name from the session's certificate) authenticates
// exactly what a full handshake would: a link of a domain under another
// certificate makes a full handshake and is authenticated with that
// certificate; one under the same certificate resumes, and its domain is
// checked against the certificate all the same (required_trusted refuses
// the handshake, required falls back to dialback).
func TestTLSResumptionExternal(t *testing.T) {
	for _, mode := range []string{"required_trusted", "required"} {
		t.Run(mode, func(t *testing.T) { testTLSResumptionExternal(t, mode) })
	}
}

func testTLSResumptionExternal(t *testing.T, mode string) {
	a13, a2 := leafFor(t, "a1.test", "a3.test"), leafFor(t, "a2.test")
	cert := &switchingCert{}
	cert.set(a13)
	la, lb := listen(t), listen(t)
	opts := []nodeOpt{withMode(mode), withExternal}
	a := newNode(t, la, []string{"a1.test", "a2.test", "a3.test", "a4.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		append(opts, withConfig(func(c *Config) {
			c.Certificate = cert
			c.DisablePiggyback = true // each pair its own connection
		}))...)
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{
		"a1.test": addrOf(la), "a2.test": addrOf(la), "a3.test": addrOf(la), "a4.test": addrOf(la),
	}, opts...)

	for i, step := range []struct {
		local   string
		cert    *testcert.Leaf // the certificate a presents from this step on; nil: unchanged
		resumed bool
		auth    Auth // 0: the link fails
	}{
		{local: "a1.test", resumed: false, auth: AuthSASLExternal},
		// Same certificate, which names a3: resumed, EXTERNAL.
		{local: "a3.test", resumed: true, auth: AuthSASLExternal},
		// a2 under a certificate of its own: a full handshake, and the
		// receiving side sees that certificate (EXTERNAL for a2).
		{local: "a2.test", cert: a2, resumed: false, auth: AuthSASLExternal},
		// Back to the first certificate, for a4, which it does not name:
		// the session resumes, and the name is checked as after a full
		// handshake with that certificate.
		{local: "a4.test", cert: a13, resumed: true, auth: map[string]Auth{"required": AuthDialback}[mode]},
	} {
		if step.cert != nil {
			cert.set(step.cert)
		}
		id := "r" + string(rune('0'+i))
		a.send("<message from='x@" + step.local + "' to='y@b.test' id='" + id + "'><body>hi</body></message>")
		if step.auth == 0 {
			if got := a.nextBounce(); got.Condition != "remote-server-not-found" {
				t.Fatalf("step %d: bounced %s (%s), want remote-server-not-found", i, got.Condition, got.Text)
			}
			continue
		}
		if got := b.nextDelivered(); got.ID != id {
			t.Fatalf("step %d: delivered %+v", i, got)
		}
		out := pairLink(t, a, Outgoing, step.local, "b.test")
		in := pairLink(t, b, Incoming, "b.test", step.local)
		if out.TLSResumed != step.resumed || in.TLSResumed != step.resumed {
			t.Errorf("step %d (%s): resumed out %v, in %v; want %v", i, step.local, out.TLSResumed, in.TLSResumed, step.resumed)
		}
		if out.Auth != step.auth || in.Auth != step.auth {
			t.Errorf("step %d (%s): auth out %v, in %v; want %v", i, step.local, out.Auth, in.Auth, step.auth)
		}
	}
}

// TestTLSResumptionReload: a Reload to a mode that would refuse the peer's
// certificate is not bypassed by a session resumed from before it, on
// either side: the new settings have their own ticket keys and session
// cache, so the next link makes a full handshake, which the new mode
// refuses. A Reload that leaves the TLS settings alone (here, a policy
// for another host) keeps the sessions: the next link resumes.
func TestTLSResumptionReload(t *testing.T) {
	other, err := testcert.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, reloads := range []string{"receiver", "sender"} {
		t.Run(reloads, func(t *testing.T) {
			domains := []string{"a1.test", "a2.test", "a3.test", "a4.test"}
			// The side that reloads trusts the test CA; its peer's
			// certificate is from another CA, which "required" accepts
			// and "required_trusted" does not.
			untrusted := func(names ...string) nodeOpt {
				l, err := other.Leaf(testcert.Options{DNSNames: names})
				if err != nil {
					t.Fatal(err)
				}
				return withConfig(func(c *Config) { c.Certificate = starttls.StaticCert(l.TLS) })
			}
			aOpts := []nodeOpt{withMode("required"), withConfig(func(c *Config) { c.DisablePiggyback = true })}
			bOpts := []nodeOpt{withMode("required")}
			if reloads == "receiver" {
				aOpts = append(aOpts, untrusted(domains...))
			} else {
				bOpts = append(bOpts, untrusted("b.test"))
			}
			la, lb := listen(t), listen(t)
			peers := map[string]netip.AddrPort{}
			for _, d := range domains {
				peers[d] = addrOf(la)
			}
			a := newNode(t, la, domains, map[string]netip.AddrPort{"b.test": addrOf(lb)}, aOpts...)
			b := newNode(t, lb, []string{"b.test"}, peers, bOpts...)
			for i, local := range domains[:2] {
				id := "r" + string(rune('0'+i))
				a.send("<message from='x@" + local + "' to='y@b.test' id='" + id + "'><body>hi</body></message>")
				if got := b.nextDelivered(); got.ID != id {
					t.Fatalf("%s: delivered %+v", local, got)
				}
				if l := pairLink(t, a, Outgoing, local, "b.test"); l.TLSResumed != (i == 1) {
					t.Fatalf("%s: resumed %v, want %v", local, l.TLSResumed, i == 1)
				}
			}
			n := b
			if reloads == "sender" {
				n = a
			}
			n.reload(func(s *config.S2S) {
				s.HostPolicy = []config.HostPolicy{{Host: "elsewhere.test", Policy: "deny"}}
			})
			a.send("<message from='x@a3.test' to='y@b.test' id='r1b'><body>hi</body></message>")
			if got := b.nextDelivered(); got.ID != "r1b" {
				t.Fatalf("a3.test after a Reload of the policy: delivered %+v", got)
			}
			if l := pairLink(t, a, Outgoing, "a3.test", "b.test"); !l.TLSResumed {
				t.Fatal("a3.test after a Reload of the policy: not resumed")
			}
			n.reload(func(s *config.S2S) { s.UseStartTLS = "required_trusted" })
			a.send("<message from='x@a4.test' to='y@b.test' id='r2'><body>hi</body></message>")
			if got := a.nextBounce(); got.Condition != "remote-server-not-found" {
				t.Fatalf("after the Reload: bounced %s (%s), want remote-server-not-found", got.Condition, got.Text)
			}
			for _, l := range b.m.Links() {
				if l.Remote == "a4.test" {
					t.Fatalf("after the Reload, a4.test linked: %+v", l)
				}
			}
		})
	}
}
