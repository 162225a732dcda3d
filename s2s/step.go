package s2s

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// Step names a stage that every outgoing link goes through, in order. A
// failed link attempt names the step it failed at, in its bounce reason
// (Bounce.Text), in the error of its event (StepOf) and in the metrics'
// cause label; the diagnosis package reports its checks under the same
// steps, so that an operator reading a bounce finds the same word in the
// diagnosis of that pair.
type Step string

// The steps of a link, in the order a link runs them.
const (
	StepPolicy  Step = "policy"  // the allow/deny rules for the remote domain
	StepDNS     Step = "dns"     // SRV and address records, or an address override
	StepConnect Step = "connect" // TCP to the targets
	StepStream  Step = "stream"  // stream headers and features
	StepTLS     Step = "tls"     // STARTTLS or direct TLS, certificate checks
	StepAuth    Step = "auth"    // SASL EXTERNAL or Server Dialback
)

// Steps lists every step in link order.
var Steps = []Step{StepPolicy, StepDNS, StepConnect, StepStream, StepTLS, StepAuth}

// Title returns the step's name as a sentence shows it: "DNS", "TCP
// connect", "stream negotiation", "TLS", "authentication" or "policy".
func (s Step) Title() string {
	switch s {
	case StepPolicy:
		return "policy"
	case StepDNS:
		return "DNS"
	case StepConnect:
		return "TCP connect"
	case StepStream:
		return "stream negotiation"
	case StepTLS:
		return "TLS"
	case StepAuth:
		return "authentication"
	}
	return string(s)
}

// StepError is a link failure with the step it happened at. Its text starts
// with the step's title, as in "TLS failed: starttls: peer example.net:
// certificate not trusted: …"; the diagnosis reports that step under the
// same title.
type StepError struct {
	Step Step
	Err  error
}

func (e *StepError) Error() string { return e.Step.Title() + " failed: " + e.Err.Error() }

// Unwrap returns Err.
func (e *StepError) Unwrap() error { return e.Err }

// atStep wraps err with step unless it already names one (or is nil).
func atStep(step Step, err error) error {
	if err == nil {
		return nil
	}
	var se *StepError
	if errors.As(err, &se) {
		return err
	}
	return &StepError{Step: step, Err: err}
}

// stepOr is the step StepOf finds in err, or def when it finds none.
func stepOr(err error, def Step) Step {
	if st := StepOf(err); st != "" {
		return st
	}
	return def
}

// StepOf returns the step a link failure happened at: the Step of a
// *StepError in err's chain, or else one told from the error's kind
// (resolver errors are DNS, refused connections are connect, certificate
// and handshake errors are TLS, refused authentication is auth). It returns
// "" for nil and for errors it cannot place.
func StepOf(err error) Step {
	if err == nil {
		return ""
	}
	var se *StepError
	if errors.As(err, &se) {
		return se.Step
	}
	var (
		dnsErr   *resolver.DNSError
		dialErr  *resolver.DialError
		vErr     *starttls.VerifyError
		alertErr tls.AlertError
		recErr   tls.RecordHeaderError
		certErr  *tls.CertificateVerificationError
		uaErr    x509.UnknownAuthorityError
		ciErr    x509.CertificateInvalidError
		hostErr  x509.HostnameError
	)
	switch {
	case errors.As(err, &dnsErr), errors.Is(err, resolver.ErrNotFound), errors.Is(err, resolver.ErrNoService),
		errors.Is(err, resolver.ErrTimeout), errors.Is(err, resolver.ErrServerFailure):
		return StepDNS
	case errors.As(err, &dialErr), errors.Is(err, resolver.ErrUnreachable):
		return StepConnect
	case errors.Is(err, ErrAuth):
		return StepAuth
	case errors.As(err, &vErr), errors.As(err, &alertErr), errors.As(err, &recErr), errors.As(err, &certErr),
		errors.As(err, &uaErr), errors.As(err, &ciErr), errors.As(err, &hostErr),
		errors.Is(err, starttls.ErrNotOffered), errors.Is(err, starttls.ErrPeerRequires),
		errors.Is(err, ErrDirectTLSDisabled):
		return StepTLS
	case errors.Is(err, ErrNegotiation):
		return StepStream
	}
	return ""
}
