package s2s

import (
	"context"
	"errors"
	"net"
	"strings"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/resolver"
)

// conditionFor chooses the bounce condition for a failed link attempt:
// remote-server-timeout when the cause is time (DNS, connect or negotiation
// timeouts, a dialback error the peer may recover from), and
// remote-server-not-found for everything that says the server is not there
// or not willing (no such domain, no service, refused, TLS or dialback
// refused).
func conditionFor(err error) stanza.Condition {
	var se stanza.Error
	var tse *TargetsError
	if errors.As(err, &tse) {
		// Every target failed: a timeout only when each one timed out,
		// since one that refused says the server is not there.
		if tse.Timeout() {
			return stanza.RemoteServerTimeout
		}
		return stanza.RemoteServerNotFound
	}
	switch {
	case errors.Is(err, ErrLinkLimit):
		return stanza.ResourceConstraint
	case errors.Is(err, errRegistry):
		return stanza.RemoteServerTimeout
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, resolver.ErrTimeout):
		return stanza.RemoteServerTimeout
	case errors.Is(err, resolver.ErrServerFailure):
		return stanza.RemoteServerTimeout
	case errors.Is(err, ErrAuth) && errors.As(err, &se):
		// A dialback error answer: transient when the peer could not
		// reach or hear from our authoritative side, a refusal otherwise
		// (policy-violation, not-authorized, item-not-found, ...).
		switch se.Condition {
		case stanza.RemoteServerTimeout, dialback.RemoteConnectionFailed, stanza.InternalServerError:
			return stanza.RemoteServerTimeout
		}
		return stanza.RemoteServerNotFound
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return stanza.RemoteServerTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return stanza.RemoteServerTimeout
	}
	return stanza.RemoteServerNotFound
}

// publicText is err's text for a bounce, which goes back to the sender and
// may leave the server: without our resolver's nameserver addresses, nor
// the local address of a connection (which network we dial from). Those
// stay in the error itself (Bounce.Err) and in the logs.
func publicText(err error) string {
	text := err.Error()
	walkErrors(err, func(e error) {
		switch e := e.(type) {
		case *resolver.DNSError:
			if e.Server != "" {
				text = strings.ReplaceAll(text, " (last server "+e.Server+")", "")
				text = strings.ReplaceAll(text, e.Server, "a nameserver")
			}
		case *net.OpError:
			if e.Source != nil {
				src := e.Source.String()
				text = strings.ReplaceAll(text, src+"->", "")
				text = strings.ReplaceAll(text, src, "a local address")
			}
		}
	})
	return text
}

// walkErrors calls f for err and every error it wraps, joined ones too.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, f)
		}
	}
}

// ErrIdle is the reason of a link closed because it carried nothing for
// Config.IdleTimeout (the Err of its LinkDown event).
var ErrIdle = errors.New("s2s: link idle")

// StreamError is a <stream:error> a peer sent us (RFC 6120 §4.9): the peer
// ended the stream with it. When that is why a link attempt failed or a
// link went down, Bounce.Err and Event.Err hold one; errors.As finds it.
type StreamError struct {
	Condition string // the defined condition, such as "host-unknown"
	Text      string // the peer's explanation; "" when it gave none
}

// Error returns the condition and, when the peer gave one, its text.
func (e *StreamError) Error() string {
	if e.Text == "" {
		return "s2s: the peer sent stream error " + e.Condition
	}
	return "s2s: the peer sent stream error " + e.Condition + ": " + e.Text
}

// next reads the next element of a stream. A peer's <stream:error> comes
// back as a *StreamError, the type a host can name; it deliberately does
// not unwrap to a mellium stream.Error, so that no code path sends the
// peer's condition back to it.
func next(r *wire.Reader) (wire.Element, error) {
	var e wire.Element
	err := nextInto(r, &e)
	return e, err
}

// nextInto is next into *e, for the loops that read a stream's stanzas:
// an Element is thirteen words, copied out of each call on the way.
func nextInto(r *wire.Reader, e *wire.Element) error {
	if err := r.NextInto(e); err != nil {
		return peerError(err)
	}
	return nil
}

// peerError turns a *wire.PeerError into a *StreamError. It is apart from
// next so that the target errors.As needs is allocated only on an error,
// not for every element read.
func peerError(err error) error {
	var pe *wire.PeerError
	if !errors.As(err, &pe) {
		return err
	}
	se := &StreamError{Condition: pe.Err.Err}
	for _, t := range pe.Err.Text {
		if se.Text == "" || t.Lang == "" || t.Lang == "en" {
			se.Text = t.Value
		}
	}
	return se
}
