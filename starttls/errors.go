package starttls

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the STARTTLS negotiation. Each says what the Manager should do;
// see the package documentation for the XMPP condition each maps to.
var (
	// ErrNotOffered: our mode requires TLS but the peer's stream features
	// do not offer STARTTLS. Close the stream; nothing was sent.
	ErrNotOffered = errors.New("starttls: peer does not offer STARTTLS, which use_starttls requires")
	// ErrPeerRequires: the peer requires STARTTLS but our mode is False.
	ErrPeerRequires = errors.New("starttls: peer requires STARTTLS, which use_starttls = \"false\" forbids")
	// ErrRequired: an incoming stream sent something other than <starttls/>
	// before TLS while our mode requires TLS.
	ErrRequired = errors.New("starttls: TLS is required before any other element")
	// ErrDisabled: an incoming stream sent <starttls/> although our mode is
	// False and it was not offered.
	ErrDisabled = errors.New("starttls: STARTTLS is not offered (use_starttls = \"false\")")
	// ErrNoCertificate: a certificate is needed (to be a TLS server) but
	// Config.Cert is nil or has none.
	ErrNoCertificate = errors.New("starttls: no certificate configured")
	// ErrNoPeerCertificate: RequiredTrusted, and the peer presented no
	// certificate.
	ErrNoPeerCertificate = errors.New("starttls: peer presented no certificate")
	// ErrUntrusted: the peer's certificate does not chain to a trusted root,
	// or is expired or otherwise invalid. The x509 error is wrapped too.
	ErrUntrusted = errors.New("starttls: certificate not trusted")
	// ErrNameMismatch: the peer's certificate does not name its domain.
	ErrNameMismatch = errors.New("starttls: certificate does not name the peer")
)

// VerifyError is returned by peer verification: which peer failed and why.
// Err wraps one of ErrNoPeerCertificate, ErrUntrusted (with the x509 error,
// such as x509.UnknownAuthorityError or x509.CertificateInvalidError),
// ErrNameMismatch or ErrBadSAN.
type VerifyError struct {
	// Domain is the peer's domain as checked (A-label); empty when only the
	// chain was checked because the peer's name was not yet known.
	Domain string
	// Err is the reason.
	Err error
}

// Error names the peer and the failed check, e.g. "starttls: peer
// example.org: certificate not trusted: x509: …".
func (e *VerifyError) Error() string {
	// The reasons are this package's sentinels; drop their prefix so that
	// the text reads "starttls: peer x: certificate not trusted: …".
	reason := strings.TrimPrefix(e.Err.Error(), "starttls: ")
	if e.Domain == "" {
		return "starttls: peer: " + reason
	}
	return fmt.Sprintf("starttls: peer %s: %s", e.Domain, reason)
}

// Unwrap returns Err.
func (e *VerifyError) Unwrap() error { return e.Err }
