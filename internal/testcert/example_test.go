package testcert_test

import (
	"crypto/tls"
	"fmt"
	"log"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// A CA and a leaf for one XMPP domain, named the three ways XEP-0178 knows.
func Example() {
	ca, err := testcert.NewCA("")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{
		DNSNames:  []string{"example.org"},
		SRVNames:  []string{"example.org"},
		XmppAddrs: []string{"example.org"},
	})
	if err != nil {
		log.Fatal(err)
	}
	// leaf.PEM is what certfile points to; leaf.TLS goes into a tls.Config.
	pair, err := tls.X509KeyPair(leaf.PEM, leaf.PEM)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(pair.Certificate), leaf.Cert.DNSNames)
	// Output: 2 [example.org]
}
