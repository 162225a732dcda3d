package starttls_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"log"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// The decisions of an incoming stream in required mode.
func ExampleConfig_Incoming() {
	cfg := &starttls.Config{Mode: starttls.Required}
	fmt.Printf("%s\n", cfg.Feature())

	// A peer that tries dialback before TLS gets a policy-violation.
	_, err := cfg.Incoming(xml.Name{Space: "jabber:server:dialback", Local: "result"})
	var se stream.Error
	fmt.Println(errors.Is(err, starttls.ErrRequired), errors.As(err, &se), se.Err)

	start, err := cfg.Incoming(xml.Name{Space: starttls.NS, Local: "starttls"})
	fmt.Println(start, err)
	// Output:
	// <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>
	// true true policy-violation
	// true <nil>
}

// The decision of an outgoing stream, from the peer's features.
func ExampleConfig_Outgoing() {
	cfg := &starttls.Config{Mode: starttls.RequiredTrusted}
	fmt.Println(cfg.Outgoing(true, false))
	fmt.Println(cfg.Outgoing(false, false))
	// Output:
	// true <nil>
	// false starttls: peer does not offer STARTTLS, which use_starttls requires
}

func ExampleParseCiphers() {
	c, err := starttls.ParseCiphers("TLSv1.2:ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256")
	fmt.Println(c, err)
	fmt.Println(c.MaxVersion == tls.VersionTLS12, len(c.Suites))

	_, err = starttls.ParseCiphers("TLSv1.2:TLS_AES_128_GCM_SHA256")
	fmt.Println(err)
	// Output:
	// TLSv1.2:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256 <nil>
	// true 2
	// starttls: invalid cipher string: "TLS_AES_128_GCM_SHA256": Go does not let TLS 1.3 cipher suites be chosen
}

// Checking a certificate's names the way XEP-0178 does.
func ExampleVerifyName() {
	ca, err := testcert.NewCA("")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{SRVNames: []string{"example.org"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(starttls.VerifyName(leaf.Cert, "Example.ORG"))
	fmt.Println(starttls.VerifyName(leaf.Cert, "example.net"))
	// Output:
	// <nil>
	// starttls: certificate does not name the peer: example.net is not among its names (SRV-ID _xmpp-server.example.org)
}

// A full configuration: certificate, private roots, and the tls.Config for
// dialing a peer.
func ExampleConfig_ClientConfig() {
	ca, err := testcert.NewCA("")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.example"}})
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cfg := &starttls.Config{
		Mode:  starttls.RequiredTrusted,
		Cert:  starttls.StaticCert(leaf.TLS),
		Roots: roots,
	}
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	tlsCfg, err := cfg.ClientConfig("Bücher.example")
	fmt.Println(tlsCfg.ServerName, err)
	// Output: xn--bcher-kva.example <nil>
}

// A host that trusts its own CA for use_starttls = "required_trusted" loads
// the CA file once and gives the pool to s2s.Config.RootCAs.
func ExampleLoadRoots() {
	roots, err := starttls.LoadRoots("testdata/openssl/ca.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	cf, err := starttls.LoadCertFile("testdata/openssl/s2s.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	cert, _ := cf.Certificate()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: "example.org", Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	fmt.Println("example.org verified:", err == nil)

	_, err = starttls.LoadRoots("testdata/openssl/s2s.pem") // a certfile, not a CA file
	fmt.Println(err)
	// Output:
	// example.org verified: true
	// testdata/openssl/s2s.pem: starttls: unusable CA file: certificate 1 (DNS:example.org) is not a CA certificate: a server's own certificate goes in certfile
}
