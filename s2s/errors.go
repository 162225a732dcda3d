package s2s

import (
	"context"
	"errors"
	"net"
	"strings"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
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
