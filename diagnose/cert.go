package diagnose

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// ourCertificate checks the certificate we present: peers check it as we
// check theirs, and SASL EXTERNAL stands on it.
func (p *probe) ourCertificate() {
	if p.tls.Cert == nil {
		if p.tls.Mode != starttls.False {
			p.rep.add(Check{Step: s2s.StepTLS, Name: "our certificate", Status: Failure,
				Detail: "none configured", Advice: "Set certfile to a PEM holding a certificate for " + p.local + " and its key."})
		}
		return
	}
	tc, err := p.tls.Cert.Certificate()
	if err == nil && (tc == nil || len(tc.Certificate) == 0) {
		err = errors.New("the source gave no certificate")
	}
	var leaf *x509.Certificate
	if err == nil {
		leaf, err = x509.ParseCertificate(tc.Certificate[0])
	}
	if err != nil {
		p.rep.add(Check{Step: s2s.StepTLS, Name: "our certificate", Status: Failure, Detail: err.Error(),
			Advice: "Fix certfile: it must hold the certificate chain and its unencrypted key in PEM."})
		return
	}
	sev := p.severity()
	p.nameCheck("our certificate name", leaf, p.local, sev,
		fmt.Sprintf("Peers that verify certificates will not accept it for %s: get one that names %s (a DNS name or an xmppAddr).", p.local, p.local))
	p.expiryCheck("our certificate expiry", leaf, sev)
	c := Check{Step: s2s.StepTLS, Name: "our certificate usage", Detail: usages(leaf)}
	if !clientAuthOK(leaf) {
		c.Status = Warning
		c.Advice = "It lacks the clientAuth extended key usage: peers that check it refuse our SASL EXTERNAL and links fall back to dialback. Ask the CA for serverAuth and clientAuth."
	}
	p.rep.add(c)
}

// peerCertificate checks the remote server's chain: trust, the RFC 6125
// name, expiry and whether it can serve as a client certificate.
func (p *probe) peerCertificate(chain []*x509.Certificate) {
	if len(chain) == 0 {
		p.rep.add(Check{Step: s2s.StepTLS, Name: "certificate", Status: p.severity(), Detail: "the server presented none",
			Advice: fmt.Sprintf("%s must present a certificate for %s.", p.remote, p.remote)})
		return
	}
	leaf := chain[0]
	sev := p.severity()

	opts := x509.VerifyOptions{
		Roots:         p.cfg.RootCAs,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   p.now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, ic := range chain[1:] {
		opts.Intermediates.AddCert(ic)
	}
	c := Check{Step: s2s.StepTLS, Name: "certificate chain", Detail: chainText(chain)}
	if chains, err := leaf.Verify(opts); err != nil {
		c.Status = sev
		c.Detail = fmt.Sprintf("%s: not trusted: %v", c.Detail, err)
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			c.Advice = "The chain holds an expired certificate; see the expiry check."
		case errors.As(err, &ua):
			c.Advice = fmt.Sprintf("Its issuer is not among our trusted roots: %s must send the intermediate certificates and use a CA we trust", p.remote)
		default:
			c.Advice = fmt.Sprintf("%s must present a chain to a CA we trust", p.remote)
		}
		if sev == Failure {
			c.Advice += `; use_starttls = "required_trusted" refuses it.`
		} else {
			c.Advice += "; links fall back to dialback, which proves less."
		}
	} else {
		c.Detail = fmt.Sprintf("%s: trusted (%d certificates to the root)", c.Detail, len(chains[0]))
	}
	p.rep.add(c)

	p.nameCheck("certificate name", leaf, p.remote, sev,
		fmt.Sprintf("%s must present a certificate naming %s (a DNS name, an SRV-ID or an xmppAddr).", p.remote, p.remote))
	p.expiryCheck("certificate expiry", leaf, sev)
	u := Check{Step: s2s.StepTLS, Name: "certificate usage", Detail: usages(leaf)}
	if !clientAuthOK(leaf) {
		u.Status = Warning
		u.Advice = fmt.Sprintf("It lacks the clientAuth extended key usage: when %s connects to servers that check it, its SASL EXTERNAL is refused and it falls back to dialback.", p.remote)
	}
	p.rep.add(u)
}

// nameCheck is the RFC 6125 / XEP-0178 match of cert against name.
func (p *probe) nameCheck(what string, cert *x509.Certificate, name string, sev Status, advice string) {
	c := Check{Step: s2s.StepTLS, Name: what}
	ids, idErr := starttls.ParseIdentities(cert)
	if err := starttls.VerifyName(cert, name); err != nil {
		c.Status, c.Advice = sev, advice
		c.Detail = fmt.Sprintf("does not name %s", name)
		if idErr == nil {
			c.Detail += fmt.Sprintf("; it names %s", ids)
		}
	} else {
		kind, value, _ := ids.Match(name)
		c.Detail = fmt.Sprintf("names %s (%s %s)", name, kind, value)
	}
	p.rep.add(c)
}

// expiryCheck reports the validity period against the clock.
func (p *probe) expiryCheck(what string, cert *x509.Certificate, sev Status) {
	c := Check{Step: s2s.StepTLS, Name: what}
	left := cert.NotAfter.Sub(p.now)
	switch {
	case p.now.Before(cert.NotBefore):
		c.Status = sev
		c.Detail = "not valid before " + cert.NotBefore.UTC().Format(time.RFC3339)
		c.Advice = "The certificate is not valid yet: check the clock of this machine and of the issuer."
	case left < 0:
		c.Status = sev
		c.Detail = fmt.Sprintf("expired %s (%d days ago)", cert.NotAfter.UTC().Format(time.RFC3339), int(-left.Hours()/24))
		c.Advice = "Renew the certificate."
	case left < ExpiryWarning:
		c.Status = Warning
		c.Detail = fmt.Sprintf("expires %s, in %d days", cert.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
		c.Advice = "Renew the certificate soon."
	default:
		c.Detail = fmt.Sprintf("valid until %s (%d days)", cert.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
	}
	p.rep.add(c)
}

// clientAuthOK reports whether cert may authenticate a TLS client: no
// extended key usage at all, any, or clientAuth.
func clientAuthOK(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) ||
		slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny)
}

func usages(cert *x509.Certificate) string {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return "no extended key usage (any use)"
	}
	var names []string
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names = append(names, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			names = append(names, "clientAuth")
		case x509.ExtKeyUsageAny:
			names = append(names, "any")
		default:
			names = append(names, fmt.Sprintf("usage %d", u))
		}
	}
	for _, oid := range cert.UnknownExtKeyUsage {
		names = append(names, oid.String())
	}
	return "extended key usage " + fmt.Sprint(names)
}

func chainText(chain []*x509.Certificate) string {
	s := fmt.Sprintf("%d certificate", len(chain))
	if len(chain) != 1 {
		s += "s"
	}
	s += ", issued by " + chain[0].Issuer.String()
	return s
}
