package starttls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/testcert"
)

// Domains of the test links: a.example.net dials b.example.net.
const (
	domainA = "a.example.net"
	domainB = "b.example.net"
)

type fixture struct {
	ca, otherCA *testcert.CA
	a, b        *testcert.Leaf // good certificates for domainA and domainB
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcert.NewCA("untrusted CA")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca, otherCA: other}
	f.a = f.leaf(t, ca, testcert.Options{DNSNames: []string{domainA}})
	f.b = f.leaf(t, ca, testcert.Options{DNSNames: []string{domainB}})
	return f
}

func (f *fixture) leaf(t *testing.T, ca *testcert.CA, opts testcert.Options) *testcert.Leaf {
	t.Helper()
	var l *testcert.Leaf
	var err error
	if ca == nil {
		l, err = testcert.SelfSigned(opts)
	} else {
		l, err = ca.Leaf(opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) config(m Mode, l *testcert.Leaf) *Config {
	c := &Config{Mode: m, Roots: f.ca.Pool()}
	if l != nil {
		c.Cert = StaticCert(l.TLS)
	}
	return c
}

var modes = []Mode{False, Optional, Required, RequiredTrusted}

// TestMatrix runs every outgoing mode against every incoming mode, with
// good certificates on both sides.
func TestMatrix(t *testing.T) {
	f := newFixture(t)
	type want struct {
		tls     bool
		out, in error // nil: linked
	}
	plain, secure := want{}, want{tls: true}
	// wants[out][in]
	wants := [4][4]want{
		False:           {plain, plain, {out: ErrPeerRequires, in: errPeerGone}, {out: ErrPeerRequires, in: errPeerGone}},
		Optional:        {plain, secure, secure, secure},
		Required:        {{out: ErrNotOffered, in: errPeerGone}, secure, secure, secure},
		RequiredTrusted: {{out: ErrNotOffered, in: errPeerGone}, secure, secure, secure},
	}
	i := 0
	for _, om := range modes {
		for _, im := range modes {
			w := wants[om][im]
			t.Run(strconv.Itoa(i)+"_"+om.String()+"_to_"+im.String(), func(t *testing.T) {
				o, in := runLink(t,
					peer{cfg: f.config(om, f.a), from: domainA},
					peer{cfg: f.config(im, f.b)},
					domainB)
				check(t, "outgoing", o, w.tls, w.out)
				check(t, "incoming", in, w.tls, w.in)
			})
			i++
		}
	}
}

// check compares an outcome with the expected encryption and error.
func check(t *testing.T, side string, got outcome, tls bool, want error) {
	t.Helper()
	if want == nil {
		if got.err != nil {
			t.Fatalf("%s: %v, want a link", side, got.err)
		}
		if got.tls != tls {
			t.Fatalf("%s: tls = %v, want %v", side, got.tls, tls)
		}
		return
	}
	if !errors.Is(got.err, want) {
		t.Fatalf("%s: error %v, want %v", side, got.err, want)
	}
}

// TestRequiredRefusesPlain plays a peer that sends <db:result> before TLS,
// as MongooseIM's required mode would accept: we must answer
// policy-violation.
func TestRequiredRefusesPlain(t *testing.T) {
	f := newFixture(t)
	for i, m := range []Mode{Required, RequiredTrusted} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			o, in := runLink(t,
				peer{cfg: f.config(False, nil), from: domainA, rogue: true},
				peer{cfg: f.config(m, f.b)},
				domainB)
			if !errors.Is(in.err, ErrRequired) || !errors.Is(in.err, stream.PolicyViolation) {
				t.Fatalf("incoming: %v, want ErrRequired and policy-violation", in.err)
			}
			if o.err == nil {
				t.Fatal("outgoing linked although the receiver refused")
			}
		})
	}
}

// certCase is one certificate presented to a RequiredTrusted peer.
type certCase struct {
	name   string
	opts   testcert.Options
	issuer string // "" our CA, "other" an untrusted CA, "self" self-signed
	none   bool   // present no certificate at all
	want   error  // nil: accepted
	x509   any    // for ErrUntrusted: the x509 error type expected
}

func certCases(d string) []certCase {
	past := time.Now().Add(-48 * time.Hour)
	return []certCase{
		{name: "dns-id", opts: testcert.Options{DNSNames: []string{d}}},
		{name: "dns-id upper case", opts: testcert.Options{DNSNames: []string{strings.ToUpper(d)}}},
		{name: "wildcard", opts: testcert.Options{DNSNames: []string{"*.example.net"}}},
		{name: "srv-id", opts: testcert.Options{SRVNames: []string{d}}},
		{name: "xmppaddr", opts: testcert.Options{XmppAddrs: []string{d}}},
		{name: "cn only", opts: testcert.Options{CommonName: d}},
		{name: "serverAuth only", opts: testcert.Options{DNSNames: []string{d}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{name: "expired", opts: testcert.Options{DNSNames: []string{d}, NotBefore: past.Add(-time.Hour), NotAfter: past}, want: ErrUntrusted, x509: x509.CertificateInvalidError{}},
		{name: "wrong name", opts: testcert.Options{DNSNames: []string{"c.example.net"}}, want: ErrNameMismatch},
		{name: "wildcard of a TLD", opts: testcert.Options{DNSNames: []string{"*.net"}}, want: ErrNameMismatch},
		{name: "cn ignored with san", opts: testcert.Options{CommonName: d, DNSNames: []string{"c.example.net"}}, want: ErrNameMismatch},
		{name: "xmppaddr with localpart", opts: testcert.Options{XmppAddrs: []string{"user@" + d}}, want: ErrNameMismatch},
		{name: "self-signed", opts: testcert.Options{DNSNames: []string{d}}, issuer: "self", want: ErrUntrusted, x509: x509.UnknownAuthorityError{}},
		{name: "untrusted chain", opts: testcert.Options{DNSNames: []string{d}}, issuer: "other", want: ErrUntrusted, x509: x509.UnknownAuthorityError{}},
		{name: "no certificate", none: true, want: ErrNoPeerCertificate},
	}
}

func (f *fixture) caseLeaf(t *testing.T, tc certCase) *testcert.Leaf {
	if tc.none {
		return nil
	}
	switch tc.issuer {
	case "self":
		return f.leaf(t, nil, tc.opts)
	case "other":
		return f.leaf(t, f.otherCA, tc.opts)
	}
	return f.leaf(t, f.ca, tc.opts)
}

// checkVerify checks a verification failure's type and reason.
func checkVerify(t *testing.T, err error, tc certCase, domain string) {
	t.Helper()
	t.Logf("error text: %v", err)
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *VerifyError", err)
	}
	if !errors.Is(err, tc.want) {
		t.Fatalf("error %v, want %v", err, tc.want)
	}
	if ve.Domain != domain {
		t.Fatalf("VerifyError.Domain = %q, want %q", ve.Domain, domain)
	}
	switch want := tc.x509.(type) {
	case x509.CertificateInvalidError:
		if !errors.As(err, &want) || want.Reason != x509.Expired {
			t.Fatalf("error %v, want x509 expired", err)
		}
	case x509.UnknownAuthorityError:
		if !errors.As(err, &want) {
			t.Fatalf("error %v, want x509 unknown authority", err)
		}
	}
}

// TestTrustedOutgoing: we dial b.example.net in RequiredTrusted mode and the
// receiver presents each certificate case.
func TestTrustedOutgoing(t *testing.T) {
	f := newFixture(t)
	for i, tc := range certCases(domainB) {
		if tc.none {
			continue // a TLS server always presents a certificate
		}
		t.Run(strconv.Itoa(i)+"_"+tc.name, func(t *testing.T) {
			o, in := runLink(t,
				peer{cfg: f.config(RequiredTrusted, f.a), from: domainA},
				peer{cfg: f.config(Optional, f.caseLeaf(t, tc))},
				domainB)
			if tc.want == nil {
				check(t, "outgoing", o, true, nil)
				check(t, "incoming", in, true, nil)
				return
			}
			checkVerify(t, o.err, tc, domainB)
			if in.err == nil {
				t.Fatal("incoming linked although the initiator refused the certificate")
			}
		})
	}
}

// TestTrustedIncoming: a.example.net dials us, we are RequiredTrusted and
// check its client certificate against the header's 'from'.
func TestTrustedIncoming(t *testing.T) {
	f := newFixture(t)
	for i, tc := range certCases(domainA) {
		t.Run(strconv.Itoa(i)+"_"+tc.name, func(t *testing.T) {
			o, in := runLink(t,
				peer{cfg: f.config(Optional, f.caseLeaf(t, tc)), from: domainA},
				peer{cfg: f.config(RequiredTrusted, f.b)},
				domainB)
			if tc.want == nil {
				check(t, "outgoing", o, true, nil)
				check(t, "incoming", in, true, nil)
				return
			}
			checkVerify(t, in.err, tc, domainA)
			if o.err == nil {
				t.Fatal("outgoing linked although the receiver refused the certificate")
			}
		})
	}
}

// TestTrustedIncomingLateName: the header has no 'from', so the handshake
// checks only the chain and VerifyPeer checks each claimed domain after.
func TestTrustedIncomingLateName(t *testing.T) {
	f := newFixture(t)
	for i, tc := range []struct {
		claims []string
		want   error
	}{
		{claims: []string{domainA}},
		{claims: []string{domainA, "c.example.net"}, want: ErrNameMismatch},
		{claims: []string{"not a domain"}, want: domain.ErrInvalid},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			o, in := runLink(t,
				peer{cfg: f.config(Optional, f.a)},
				peer{cfg: f.config(RequiredTrusted, f.b), claims: tc.claims},
				domainB)
			if tc.want == nil {
				check(t, "outgoing", o, true, nil)
				check(t, "incoming", in, true, nil)
				return
			}
			var ve *VerifyError
			if !errors.As(in.err, &ve) || !errors.Is(in.err, tc.want) {
				t.Fatalf("incoming: %v, want *VerifyError wrapping %v", in.err, tc.want)
			}
			if o.err == nil {
				t.Fatal("outgoing linked although the receiver refused")
			}
		})
	}
}

// TestTrustedClock: an injected clock past the certificate's expiry fails
// the chain, proving Config.Time reaches the checks.
func TestTrustedClock(t *testing.T) {
	f := newFixture(t)
	out := f.config(RequiredTrusted, f.a)
	out.Time = func() time.Time { return time.Now().Add(72 * time.Hour) }
	o, _ := runLink(t, peer{cfg: out, from: domainA}, peer{cfg: f.config(Optional, f.b)}, domainB)
	var inv x509.CertificateInvalidError
	if !errors.Is(o.err, ErrUntrusted) || !errors.As(o.err, &inv) || inv.Reason != x509.Expired {
		t.Fatalf("outgoing: %v, want expired", o.err)
	}
}

// TestDirectTLS: XEP-0368 configs negotiate ALPN xmpp-server.
func TestDirectTLS(t *testing.T) {
	f := newFixture(t)
	srv, err := f.config(RequiredTrusted, f.b).DirectServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := f.config(RequiredTrusted, f.a).DirectClientConfig(domainB)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- err
			return
		}
		got <- f.config(RequiredTrusted, f.b).VerifyPeer(domainA, tc.ConnectionState())
		tc.Write([]byte{0})
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != ALPN {
		t.Fatalf("ALPN = %q, want %q", p, ALPN)
	}
	if c.ConnectionState().ServerName != domainB {
		t.Fatalf("SNI = %q", c.ConnectionState().ServerName)
	}
	c.Read(make([]byte, 1))
	if err := <-got; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestClientAuthOnlyServer: a server we dial must hold a certificate for
// serverAuth; the reverse leniency (serverAuth accepted from a peer dialing
// us) is the "serverAuth only" case of certCases.
func TestClientAuthOnlyServer(t *testing.T) {
	f := newFixture(t)
	clientOnly := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{domainB}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	o, _ := runLink(t, peer{cfg: f.config(RequiredTrusted, f.a), from: domainA}, peer{cfg: f.config(Optional, clientOnly)}, domainB)
	var inv x509.CertificateInvalidError
	if !errors.Is(o.err, ErrUntrusted) || !errors.As(o.err, &inv) || inv.Reason != x509.IncompatibleUsage {
		t.Fatalf("outgoing to a clientAuth-only server: %v, want incompatible usage", o.err)
	}
}
