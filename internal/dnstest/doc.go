// Package dnstest runs a small authoritative-style DNS server on loopback for
// tests, in the spirit of net/http/httptest: it answers from a table the test
// fills in, over UDP and TCP on the same port, and can misbehave on purpose
// (drop a query, answer SERVFAIL, send a spoofed reply first, truncate UDP
// answers, answer late) so that a client's timeouts, retries and TCP fallback
// can be exercised against real sockets instead of a mock.
//
// A name that has no entry at all is answered NXDOMAIN; a name that has
// entries, but none for the asked type, is answered NOERROR with an empty
// answer section (NODATA), as a real zone would.
//
//	srv, err := dnstest.NewServer("127.0.0.1:0")
//	...
//	defer srv.Close()
//	srv.Set("_xmpp-server._tcp.example.org", dnsmessage.TypeSRV, dnstest.Entry{
//		Answers: []dnsmessage.Resource{
//			dnstest.SRV("_xmpp-server._tcp.example.org", 0, 0, 5269, "xmpp.example.org"),
//		},
//	})
//	srv.Set("xmpp.example.org", dnsmessage.TypeA, dnstest.Entry{
//		Answers: []dnsmessage.Resource{dnstest.A("xmpp.example.org", "127.0.0.1")},
//	})
//
// The package is internal: it exists for this module's own tests.
package dnstest
