package saslext

import "mellium.im/sasl"

// Name is the SASL name of the mechanism.
const Name = "EXTERNAL"

// Mechanism is SASL EXTERNAL (RFC 4422 Appendix A) for mellium.im/sasl.
//
// As a client it sends the Identity of the negotiator's credentials as the
// authorization identity, empty unless set: on s2s the empty authzid is the
// norm, the server deriving the identity from the stream's 'from' (XEP-0178
// §3). Any further step is sasl.ErrTooManySteps, since the exchange ends
// with the server's verdict.
//
// As a server, the first Step takes the client's (decoded) response and asks
// the negotiator's permission function, with that response as the Identity
// of the credentials; a refusal is sasl.ErrAuthn. Like every Mechanism it
// holds no state and is safe for concurrent use.
var Mechanism = sasl.Mechanism{
	Name: Name,
	Start: func(n *sasl.Negotiator) (bool, []byte, interface{}, error) {
		_, _, authzid := n.Credentials()
		// Copy, so that the caller's slice never ends up in a buffer we
		// hand on.
		return false, append([]byte{}, authzid...), nil, nil
	},
	Next: func(n *sasl.Negotiator, response []byte, _ interface{}) (bool, []byte, interface{}, error) {
		// Only a server's first step reads a response; a client is never
		// challenged because it always sends an initial response.
		if n.State()&sasl.Receiving == 0 || n.State()&sasl.StepMask != sasl.AuthTextSent {
			return false, nil, nil, sasl.ErrTooManySteps
		}
		authzid := response
		ok := n.Permissions(sasl.Credentials(func() (_, _, identity []byte) {
			return nil, nil, authzid
		}))
		if !ok {
			return false, nil, nil, sasl.ErrAuthn
		}
		return false, nil, nil, nil
	},
}
