package starttls

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// TestResumptionFacts pins what crypto/tls does with a resumed TLS 1.3
// session, the facts resume.go rests on (here with crypto/tls's own
// client cache, keyed by server name only):
//
//  1. VerifyConnection runs on a resumed connection too, on both sides,
//     with the peer's certificates restored from the session, so the
//     RequiredTrusted chain and RFC 6125 name checks still run.
//  2. On resumption the client sends no certificate: the server sees the
//     one of the session's first handshake. A cache shared by two local
//     domains would so authenticate the second as the first (SASL
//     EXTERNAL takes the name from that certificate); crypto/tls keys its
//     cache by server name only, so ours adds the certificate the link
//     would present (TestResumptionKeyedByCertificate).
func TestResumptionFacts(t *testing.T) {
	f := newFixture(t)
	otherLocal := f.leaf(t, f.ca, testcert.Options{DNSNames: []string{"c.example.net"}})

	// One server tls.Config for every connection, so that its ticket keys
	// are shared; the header's 'from' is not known (as for direct TLS),
	// so the name check is VerifyPeer's, below.
	scfg, err := f.config(RequiredTrusted, f.b).ServerConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cache := tls.NewLRUClientSessionCache(4)

	type seen struct {
		resumed      bool
		peer         []*x509.Certificate
		verifyCalled bool
	}
	connect := func(local *testcert.Leaf) (client, server seen) {
		t.Helper()
		ccfg, err := f.config(RequiredTrusted, local).ClientConfig(domainB)
		if err != nil {
			t.Fatal(err)
		}
		ccfg.ClientSessionCache = cache
		verifyC := ccfg.VerifyConnection
		ccfg.VerifyConnection = func(cs tls.ConnectionState) error {
			client = seen{resumed: cs.DidResume, peer: cs.PeerCertificates, verifyCalled: true}
			return verifyC(cs)
		}
		s := scfg.Clone()
		verifyS := scfg.VerifyConnection
		s.VerifyConnection = func(cs tls.ConnectionState) error {
			server = seen{resumed: cs.DidResume, peer: cs.PeerCertificates, verifyCalled: true}
			return verifyS(cs)
		}
		// handshake: real loopback TCP, not net.Pipe (a resumed handshake
		// has both sides writing at once, which an unbuffered pipe
		// deadlocks on), and the client reads the session ticket.
		if h := handshake(t, ccfg, s); h.clientErr != nil || h.serverErr != nil {
			t.Fatalf("client: %v; server: %v", h.clientErr, h.serverErr)
		}
		return client, server
	}
	c, s := connect(f.a)
	if c.resumed || s.resumed {
		t.Fatal("the first connection resumed")
	}
	if len(s.peer) == 0 || VerifyName(s.peer[0], domainA) != nil {
		t.Fatalf("first connection: the server saw %v, want a.example.net's certificate", names(s.peer))
	}

	// Fact 1.
	c, s = connect(f.a)
	if !c.resumed || !s.resumed {
		t.Fatalf("second connection: resumed client %v, server %v: want both", c.resumed, s.resumed)
	}
	if !c.verifyCalled || len(c.peer) == 0 || VerifyName(c.peer[0], domainB) != nil {
		t.Fatalf("resumed: the client's VerifyConnection saw %v, want b.example.net's certificate", names(c.peer))
	}
	if !s.verifyCalled || len(s.peer) == 0 || VerifyName(s.peer[0], domainA) != nil {
		t.Fatalf("resumed: the server's VerifyConnection saw %v, want a.example.net's certificate", names(s.peer))
	}
	cfg := f.config(RequiredTrusted, f.b)
	if err := cfg.VerifyPeer(domainA, tls.ConnectionState{PeerCertificates: s.peer}); err != nil {
		t.Fatalf("VerifyPeer on the resumed connection: %v", err)
	}

	// Fact 2: another local domain, same cache.
	c, s = connect(otherLocal)
	if !c.resumed || !s.resumed {
		t.Fatalf("third connection: resumed client %v, server %v: want both", c.resumed, s.resumed)
	}
	if len(s.peer) == 0 || VerifyName(s.peer[0], domainA) != nil {
		t.Fatalf("resumed with c.example.net's certificate configured, the server saw %v: want a.example.net's, from the session", names(s.peer))
	}
	if err := cfg.VerifyPeer("c.example.net", tls.ConnectionState{PeerCertificates: s.peer}); err == nil {
		t.Fatal("the resumed session's certificate passed as c.example.net's")
	}
}

func names(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.DNSNames...)
	}
	return out
}
