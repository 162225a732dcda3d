package starttls_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// Session resumption is on by default: the second link between two servers
// resumes the first one's TLS 1.3 session, and the required_trusted checks
// still run on the certificates the session carries. One Config per side
// holds the ticket keys and the session cache for all its streams;
// DisableResumption turns both off.
func ExampleConfig_resumption() {
	ca, err := testcert.NewCA("")
	if err != nil {
		log.Fatal(err)
	}
	config := func(domain string) *starttls.Config {
		leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{domain}})
		if err != nil {
			log.Fatal(err)
		}
		return &starttls.Config{Mode: starttls.RequiredTrusted, Cert: starttls.StaticCert(leaf.TLS), Roots: ca.Pool()}
	}
	sender, receiver := config("a.example"), config("b.example")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	for range 2 {
		// The receiving side, as for an incoming stream from a.example:
		// each stream gets its own tls.Config from the same Config.
		done := make(chan bool)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				log.Fatal(err)
			}
			defer c.Close()
			cfg, err := receiver.ServerConfig("a.example")
			if err != nil {
				log.Fatal(err)
			}
			tc := tls.Server(c, cfg)
			if err := tc.Handshake(); err != nil {
				log.Fatal(err)
			}
			tc.Write([]byte("<stream:stream>")) // the ticket goes first
			done <- tc.ConnectionState().DidResume
		}()

		// The sending side, dialling b.example.
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		cfg, err := sender.ClientConfig("b.example")
		if err != nil {
			log.Fatal(err)
		}
		tc := tls.Client(c, cfg)
		if _, err := io.ReadFull(tc, make([]byte, 15)); err != nil {
			log.Fatal(err)
		}
		fmt.Println("resumed:", tc.ConnectionState().DidResume, <-done)
		tc.Close()
	}
	// Output:
	// resumed: false false
	// resumed: true true
}

// A host that rebuilds its Config on a reload hands the old one's sessions
// to the new one, which takes them only when it judges certificates alike.
func ExampleConfig_ShareSessions() {
	ca, err := testcert.NewCA("")
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.example"}})
	if err != nil {
		log.Fatal(err)
	}
	old := &starttls.Config{Mode: starttls.RequiredTrusted, Cert: starttls.StaticCert(leaf.TLS), Roots: ca.Pool()}

	// The certfile was renewed: same rules, the sessions carry over (each
	// stays bound to the certificate that made it).
	renewed := &starttls.Config{Mode: starttls.RequiredTrusted, Cert: starttls.StaticCert(leaf.TLS), Roots: ca.Pool()}
	fmt.Println(renewed.ShareSessions(old))

	// use_starttls changed: nothing made under the old rules resumes.
	relaxed := &starttls.Config{Mode: starttls.Required, Cert: starttls.StaticCert(leaf.TLS), Roots: ca.Pool()}
	fmt.Println(relaxed.ShareSessions(old))
	// Output:
	// true
	// false
}
