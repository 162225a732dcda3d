package interop

import (
	"context"
	"crypto/x509"
	"net"
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
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// diagnosisCase is a peer set up wrong on purpose and the check that must
// name the cause.
type diagnosisCase struct {
	name   string
	mode   string // our use_starttls
	check  string // prefix of the check's name
	status diagnose.Status
	step   s2s.Step
	detail string
	advice string
	can    bool
}

// diagnoseDNS is a loopback DNS server for the diagnosis: the peer's SRV
// record (or none) points where the case says.
func diagnoseDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	srv, err := dnstest.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func publishSRV(srv *dnstest.Server, domain string, port int) {
	host := "xmpp." + domain
	srv.Set("_xmpp-server._tcp."+domain, dnsmessage.TypeSRV, dnstest.Entry{Answers: []dnsmessage.Resource{
		dnstest.SRV("_xmpp-server._tcp."+domain, 0, 5, uint16(port), host)}})
	srv.Set(host, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(host, "127.0.0.1")}})
}

// runDiagnosis diagnoses ourDomain -> remote and checks the case.
func runDiagnosis(t *testing.T, tc diagnosisCase, remote string, dns *dnstest.Server, tweak func(*diagnose.Config)) *diagnose.Report {
	t.Helper()
	s := config.Default()
	s.UseStartTLS = tc.mode
	s.DNS.Retries = 1
	c := diagnose.Config{S2S: s, Nameservers: []string{dns.Addr()}, RootCAs: testCA().Pool(),
		Certificate: starttls.StaticCert(leafWith(t, testCA(), testcert.Options{DNSNames: []string{ourDomain}}).TLS), Timeout: 20 * time.Second}
	if tweak != nil {
		tweak(&c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	rep, err := diagnose.Run(ctx, c, ourDomain, remote)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("%s", text.String())
	var got diagnose.Check
	found := false
	for _, ch := range rep.Checks {
		if strings.HasPrefix(ch.Name, tc.check) && (!found || ch.Status > got.Status) {
			got, found = ch, true
		}
	}
	switch {
	case !found:
		t.Errorf("no check %q", tc.check)
	case got.Status != tc.status || got.Step != tc.step || !strings.Contains(got.Detail, tc.detail) || !strings.Contains(got.Advice, tc.advice):
		t.Errorf("check %q = %+v\nwant status %s, step %s, detail ~%q, advice ~%q", tc.check, got, tc.status, tc.step, tc.detail, tc.advice)
	}
	if rep.CanFederate() != tc.can {
		t.Errorf("CanFederate = %v, want %v", rep.CanFederate(), tc.can)
	}
	return rep
}

// leafWith issues a certificate valid for 90 days unless o says otherwise,
// so that no check warns of an expiry the case did not ask for.
func leafWith(t *testing.T, ca *testcert.CA, o testcert.Options) *testcert.Leaf {
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

// TestDiagnoseProsody diagnoses Prosody set up wrong in one way at a time,
// and once set up right with a listener for our domain, so that the
// authentication attempt runs (Prosody verifies our dialback key there).
func TestDiagnoseProsody(t *testing.T) {
	month := time.Now().Add(30 * 24 * time.Hour)
	cases := []struct {
		diagnosisCase
		prosody ProsodyConfig
		srv     string // "srv" (default), "none" (A record only), "refused"
		listen  bool
	}{
		{diagnosisCase: diagnosisCase{name: "good", mode: "required_trusted", check: "authentication attempt",
			status: diagnose.OK, step: s2s.StepAuth, detail: "authenticated by dialback over TLS1.3", can: true},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{prosodyDomain}}).PEM}, listen: true},
		{diagnosisCase: diagnosisCase{name: "no SRV", mode: "required_trusted", check: "SRV _xmpp-server",
			status: diagnose.Warning, step: s2s.StepDNS, detail: "no SRV records", advice: "publish an SRV record", can: true},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{prosodyDomain}}).PEM}, srv: "none"},
		{diagnosisCase: diagnosisCase{name: "refused port", mode: "required_trusted", check: "connect ",
			status: diagnose.Failure, step: s2s.StepConnect, detail: "connection refused", advice: "Nothing listens"},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{prosodyDomain}}).PEM}, srv: "refused"},
		{diagnosisCase: diagnosisCase{name: "certificate for another name", mode: "required_trusted", check: "certificate name",
			status: diagnose.Failure, step: s2s.StepTLS, detail: "does not name prosody.test", advice: "naming prosody.test"},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{"elsewhere.test"}}).PEM}},
		{diagnosisCase: diagnosisCase{name: "expired", mode: "required_trusted", check: "certificate expiry",
			status: diagnose.Failure, step: s2s.StepTLS, detail: "expired", advice: "Renew"},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{prosodyDomain},
				NotBefore: time.Now().Add(-90 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}).PEM}},
		{diagnosisCase: diagnosisCase{name: "without clientAuth", mode: "required_trusted", check: "certificate usage",
			status: diagnose.Warning, step: s2s.StepTLS, detail: "[serverAuth]", advice: "clientAuth", can: true},
			prosody: ProsodyConfig{TLS: "required", CertPEM: leafWith(t, testCA(), testcert.Options{DNSNames: []string{prosodyDomain},
				NotAfter: month, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}).PEM}},
		{diagnosisCase: diagnosisCase{name: "untrusted under required_trusted", mode: "required_trusted", check: "certificate chain",
			status: diagnose.Failure, step: s2s.StepTLS, detail: "not trusted", advice: `"required_trusted" refuses it`},
			prosody: ProsodyConfig{TLS: "required", CertPEM: untrustedLeafFor(t, prosodyDomain).PEM}},
		{diagnosisCase: diagnosisCase{name: "dialback disabled", mode: "optional", check: "methods offered",
			status: diagnose.Failure, step: s2s.StepAuth, detail: "neither Server Dialback nor SASL EXTERNAL", advice: "mod_dialback"},
			prosody: ProsodyConfig{TLS: "optional", NoDialback: true, CertPEM: leafFor(t, prosodyDomain).PEM}},
	}
	for i, tc := range cases {
		t.Run(strconv.Itoa(i)+"-"+strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var ln net.Listener
			c := tc.prosody
			c.Domain = prosodyDomain
			if tc.listen {
				var err error
				if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				c.Routes = []Route{{Domain: ourDomain, Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}}
			}
			p := StartProsody(t, c)
			dns := diagnoseDNS(t)
			port := p.Port
			var tweak func(*diagnose.Config)
			switch tc.srv {
			case "none":
				dns.Set(prosodyDomain, dnsmessage.TypeA, dnstest.Entry{Answers: []dnsmessage.Resource{dnstest.A(prosodyDomain, "127.0.0.1")}})
				tweak = func(c *diagnose.Config) { c.S2S.Outgoing.Port = p.Port }
			case "refused":
				port = int(testnet.RefusedAddr(t).Port())
				fallthrough
			default:
				publishSRV(dns, prosodyDomain, port)
			}
			if ln != nil {
				prev := tweak
				tweak = func(c *diagnose.Config) {
					if prev != nil {
						prev(c)
					}
					c.Listener = ln
				}
			}
			runDiagnosis(t, tc.diagnosisCase, prosodyDomain, dns, tweak)
		})
	}
}

// TestDiagnoseEjabberd: ejabberd with a certificate for another name, and
// with one from a CA we do not trust, under our required_trusted.
func TestDiagnoseEjabberd(t *testing.T) {
	RequireRoot(t, "ejabberdctl switches to the ejabberd user")
	for i, tc := range []struct {
		diagnosisCase
		cert *testcert.Leaf
	}{
		{diagnosisCase{name: "certificate for another name", mode: "required_trusted", check: "certificate name",
			status: diagnose.Failure, step: s2s.StepTLS, detail: "does not name ej.test", advice: "naming ej.test"},
			leafWith(t, testCA(), testcert.Options{DNSNames: []string{"elsewhere.test"}})},
		{diagnosisCase{name: "untrusted", mode: "required_trusted", check: "certificate chain",
			status: diagnose.Failure, step: s2s.StepTLS, detail: "not trusted", advice: `"required_trusted" refuses it`},
			untrustedLeafFor(t, ejabberdDomain)},
	} {
		t.Run(strconv.Itoa(i)+"-"+strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			e := StartEjabberd(t, EjabberdConfig{Domain: ejabberdDomain, TLS: "required", CertPEM: tc.cert.PEM})
			dns := diagnoseDNS(t)
			publishSRV(dns, ejabberdDomain, e.Port)
			runDiagnosis(t, tc.diagnosisCase, ejabberdDomain, dns, nil)
		})
	}
}
