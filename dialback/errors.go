package dialback

import (
	"errors"

	"mellium.im/xmpp/stanza"
)

// Sentinel errors. Errors returned by this package wrap one of them, or a
// [stanza.Error] carrying the dialback error condition, or both, so callers
// can tell cases apart with [errors.Is] and [errors.As].
var (
	// ErrMalformed is wrapped by Decode and ParseFeature for an element that
	// does not follow the XEP-0220 schema closely enough to act on.
	ErrMalformed = errors.New("dialback: malformed element")

	// ErrUnsolicited reports an element nobody asked for: an answer that does
	// not correlate to a request made on the same stream, or an element that
	// came in the wrong direction (a request on an outgoing stream, an answer
	// on an incoming one). XEP-0220 §3.1 says to drop it; accepting it would
	// let a peer spoof domains.
	ErrUnsolicited = errors.New("dialback: unsolicited element")

	// ErrPending reports a request for a domain pair that is already waiting
	// for its answer on the same stream.
	ErrPending = errors.New("dialback: request already pending")

	// ErrInvalid reports a key that the authoritative server did not accept.
	ErrInvalid = errors.New("dialback: key not valid")

	// ErrClosed is wrapped when the stream a request was waiting on closed
	// before the answer came.
	ErrClosed = errors.New("dialback: stream closed")
)

// RemoteConnectionFailed is the dialback error condition (XEP-0220 §2.5) for
// a receiving server that could not connect to the authoritative server.
// It is not one of RFC 6120's stanza conditions, so mellium lacks it.
const RemoteConnectionFailed stanza.Condition = "remote-connection-failed"

// newError returns the stanza error for a dialback condition, with the error
// type a retry decision needs: conditions caused by the network are worth
// trying again later, the others are not.
func newError(c stanza.Condition) *stanza.Error {
	t := stanza.Cancel
	switch c {
	case stanza.RemoteServerTimeout, RemoteConnectionFailed, stanza.InternalServerError, stanza.ResourceConstraint:
		t = stanza.Wait
	}
	return &stanza.Error{Type: t, Condition: c}
}
