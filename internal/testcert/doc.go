// Package testcert makes throw-away X.509 certificates for tests and demos:
// a certificate authority, leaf certificates that name an XMPP domain in any
// of the ways RFC 6125 and XEP-0178 know (DNS-ID, wildcard DNS-ID, SRV-ID,
// XmppAddr, CN only), expired or self-signed ones, and the PEM form that the
// s2s certfile option reads.
//
// It needs no testing.T so that runnable examples can generate their
// certificates at start-up. All keys are ECDSA P-256: they are generated in
// well under a millisecond, which keeps tables of many certificates fast.
//
// Nothing here is fit for production: keys are never protected and the CA
// lives only in memory.
package testcert
