// Package saslext is SASL EXTERNAL for server-to-server streams (XEP-0178 on
// RFC 6120 §6): the mechanism, written against mellium.im/sasl's public
// Mechanism type because that module has none, and the few SASL elements an
// s2s stream exchanges (<mechanisms/>, <auth/>, <challenge/>, <response/>,
// <success/>, <failure/>).
//
// EXTERNAL carries no credentials: the TLS layer has already proven who the
// peer is through its certificate, and the only payload is an optional
// authorization identity (authzid), which on s2s is either empty or the
// initiating domain itself. Deciding whether the certificate proves that
// domain is the caller's job (the starttls package does the RFC 6125 checks);
// this package only asks the caller's permission function, with the authzid
// as the Identity of the credentials.
//
// An initiating server:
//
//	n := sasl.NewClient(saslext.Mechanism)
//	_, resp, _ := n.Step(nil) // resp is the empty authzid
//	conn.Write(saslext.Auth(saslext.Name, resp, true))
//	// read <success/> and restart the stream, or <failure/> (ParseFailure).
//
// A receiving server:
//
//	n := sasl.NewServer(saslext.Mechanism, func(n *sasl.Negotiator) bool {
//		_, _, authzid := n.Credentials()
//		return len(authzid) == 0 || string(authzid) == peerDomain
//	})
//	_, _, err := n.Step(initialResponse) // from ParseAuth
//
// The package is internal: it is the s2s Manager's plumbing, not an API.
package saslext
