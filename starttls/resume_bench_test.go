package starttls

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// BenchmarkCheck is what one side of a link spends checking the peer's
// certificate: in full (a full handshake, or a resumed one without the
// session's window) and inside the window of a chain the session's first
// handshake verified (a resumed one): the chain's signatures are the
// difference.
func BenchmarkCheck(b *testing.B) {
	f := newFixture(&testing.T{})
	c := f.config(RequiredTrusted, f.b)
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.a.Cert}}
	w, err := c.check(domainA, cs, clientUsage, window{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		known window
	}{{"full", window{}}, {"resumed", w}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.check(domainA, cs, clientUsage, bc.known); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
