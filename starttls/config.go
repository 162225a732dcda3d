package starttls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// ALPN is the protocol name of XEP-0368 direct TLS for s2s.
const ALPN = "xmpp-server"

// Config is the STARTTLS policy of one set of s2s streams: it answers what
// to advertise, whether to start or accept TLS, and makes the *tls.Config
// for each side of a handshake.
//
// The zero value is the option defaults: mode False, no certificate, the
// system roots, TLS 1.2 and 1.3 with Go's suites. Fields must not change
// once the Config is in use; its methods are then safe for concurrent use.
// To change policy at run time, build a new Config and swap the pointer.
type Config struct {
	// Mode is use_starttls.
	Mode Mode
	// Cert is the certificate presented in both roles (certfile). It is
	// required for every mode but False, since an incoming stream cannot
	// offer TLS without one; see Validate. nil presents none as a client.
	Cert CertSource
	// Roots are the trusted roots for RequiredTrusted; nil means the system
	// pool. Tests and private federations set their own.
	Roots *x509.CertPool
	// Ciphers is the parsed ciphers option; the zero value is the default.
	Ciphers Ciphers
	// Time returns the current time for certificate validity; nil means
	// time.Now. Tests inject a clock here.
	Time func() time.Time

	// DisableResumption turns TLS session resumption off in both roles:
	// incoming streams issue no session tickets and outgoing ones keep no
	// sessions, so that every handshake is a full one. By default a link
	// to a server we linked to before resumes its TLS 1.3 session (no
	// certificates sent, no signatures made or checked), with every check
	// of Mode still made on the certificates the session carries; see
	// ServerConfig and ClientConfig for what may resume what.
	DisableResumption bool
	// SessionCacheSize bounds the sessions kept for outgoing streams, one
	// per remote domain and certificate of ours; 0 means
	// DefaultSessionCacheSize.
	SessionCacheSize int

	resumeOnce sync.Once
	resume     *sessions
}

// Validate reports a configuration that cannot work: an unknown mode, or a
// mode that uses TLS without a certificate (MongooseIM's "certfile is
// required unless use_starttls is false").
func (c *Config) Validate() error {
	if _, err := c.Mode.MarshalText(); err != nil {
		return err
	}
	if c.Mode.usesTLS() && c.Cert == nil {
		return fmt.Errorf("%w: use_starttls = %q needs certfile", ErrNoCertificate, c.Mode)
	}
	return nil
}

// Offer reports what incoming streams advertise: whether STARTTLS is offered
// at all, and whether it is marked <required/>.
func (c *Config) Offer() (offer, required bool) {
	return c.Mode.usesTLS(), c.Mode.required()
}

// Feature returns the <starttls/> element to put in the <stream:features> of
// an incoming stream before TLS, with <required/> when the mode requires it;
// nil when the mode is False. The caller must not modify the result.
func (c *Config) Feature() []byte {
	switch {
	case c.Mode.required():
		return []byte(featureRequired)
	case c.Mode.usesTLS():
		return []byte(featureOptional)
	}
	return nil
}

// Outgoing decides, from the features of a peer we connected to, whether to
// send StartTLS (offered: a <starttls/> feature was present; required: it
// had <required/>, see ParseFeature). The error is ErrNotOffered when we
// require TLS and the peer does not offer it, ErrPeerRequires when the
// peer requires it and our mode is False; in both cases the stream must be
// closed without sending anything more.
func (c *Config) Outgoing(offered, required bool) (start bool, err error) {
	switch {
	case !c.Mode.usesTLS() && offered && required:
		return false, ErrPeerRequires
	case !c.Mode.usesTLS():
		return false, nil
	case offered:
		return true, nil
	case c.Mode.required():
		return false, ErrNotOffered
	}
	return false, nil
}

// Incoming decides what to do with an element that arrived on an incoming
// stream before TLS. start is true for <starttls/> when TLS is offered:
// answer Proceed and run the handshake with ServerConfig. The errors:
//
//   - ErrDisabled for <starttls/> in mode False: answer Failure and close
//     the stream (RFC 6120 §5.4.2.2).
//   - ErrRequired for anything else, <db:result> included, when the mode
//     requires TLS. The error also wraps a stream.Error with condition
//     policy-violation and a text saying why; send it (errors.As) and close.
//
// (false, nil) means the element may be processed without TLS.
func (c *Config) Incoming(name xml.Name) (start bool, err error) {
	if name.Space == NS && name.Local == "starttls" {
		if !c.Mode.usesTLS() {
			return false, ErrDisabled
		}
		return true, nil
	}
	if c.Mode.required() {
		se := stream.Error{Err: stream.PolicyViolation.Err, Text: []struct{ Lang, Value string }{
			{Value: "STARTTLS is required before any other element"},
		}}
		return false, fmt.Errorf("%w: got <%s xmlns='%s'>: %w", ErrRequired, name.Local, name.Space, se)
	}
	return false, nil
}

// ClientConfig returns the TLS configuration for STARTTLS on an outgoing
// stream to the remote domain, which becomes the SNI name (as an A-label).
// In RequiredTrusted mode the handshake fails with a *VerifyError unless the
// server's certificate chains to Roots and names the domain; in the other
// modes the certificate is not checked, because Server Dialback then
// authenticates the peer, as RFC 7590 §3.1 allows. Our certificate is
// presented if the server asks for one.
//
// Unless DisableResumption is set, the configuration offers the TLS 1.3
// session of an earlier stream to the same domain that presented the same
// certificate of ours (Cert's answer now), and files the session it gets
// for the next one.
func (c *Config) ClientConfig(remote string) (*tls.Config, error) {
	name, err := domain.Normalize(remote)
	if err != nil {
		return nil, fmt.Errorf("starttls: remote domain: %w", err)
	}
	cfg := &tls.Config{
		ServerName: name,
		// Verification is ours (VerifyConnection): Go's would check the
		// name as a DNS-ID only, missing SRV-ID and XmppAddr.
		InsecureSkipVerify:   true,
		GetClientCertificate: c.clientCert,
		Time:                 c.Time,
	}
	c.Ciphers.apply(cfg)
	trusted := c.Mode == RequiredTrusted
	if trusted {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return c.verify(name, cs, serverUsage)
		}
	}
	s := c.resumption()
	if s == nil {
		return cfg, nil
	}
	// The certificate is taken once, now, so that the session is filed
	// under the one this handshake presents. A source that fails keeps
	// the link from resuming and fails the handshake if the server asks.
	var ours *tls.Certificate
	if c.Cert != nil {
		if ours, err = c.Cert.Certificate(); err != nil {
			return cfg, nil
		}
	}
	sum := s.print(ours)
	sc := &clientSessions{cache: s.cache, prefix: string(sum[:]), now: c.now}
	cfg.ClientSessionCache = sc
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if ours == nil {
			return &tls.Certificate{}, nil
		}
		return ours, nil
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		var w window
		var err error
		if trusted {
			var known window
			if cs.DidResume {
				known = sc.offered
			}
			w, err = c.check(name, cs, serverUsage, known)
		}
		sc.seen(name, cs, w, err)
		return err
	}
	return cfg, nil
}

// DirectClientConfig is ClientConfig for XEP-0368 direct TLS: the same, and
// offering ALPN "xmpp-server".
func (c *Config) DirectClientConfig(remote string) (*tls.Config, error) {
	cfg, err := c.ClientConfig(remote)
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = []string{ALPN}
	return cfg, nil
}

// ServerConfig returns the TLS configuration for STARTTLS on an incoming
// stream. peer is the 'from' of the stream header, or "" if the header had
// none. A client certificate is always requested, so that it is there for
// VerifyPeer (and later SASL EXTERNAL); in RequiredTrusted mode it must
// be present, chain to Roots, and, when peer is known, must name it, or
// the handshake fails with a *VerifyError. When peer is "", call VerifyPeer
// with each domain the stream claims once it is known. The error is
// ErrNoCertificate when Cert is nil, or a domain error for a bad peer.
//
// Unless DisableResumption is set, the configuration issues a session
// ticket sealed with c's keys, and resumes a ticket of c's that was issued
// while Cert presented the certificate it presents now; the peer's
// certificate from the session is then checked as above.
func (c *Config) ServerConfig(peer string) (*tls.Config, error) {
	if c.Cert == nil {
		return nil, ErrNoCertificate
	}
	var name string
	if peer != "" {
		var err error
		if name, err = domain.Normalize(peer); err != nil {
			return nil, fmt.Errorf("starttls: peer domain: %w", err)
		}
	}
	cfg := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.Cert.Certificate() },
		ClientAuth:     tls.RequestClientCert,
		Time:           c.Time,
	}
	c.Ciphers.apply(cfg)
	st := &serverStream{}
	if s := c.resumption(); s != nil {
		// Tickets are sealed with the keys of c, not of this stream's
		// tls.Config, so that a later stream can redeem them.
		s.serverResumption(cfg, c.Cert, st)
	} else {
		cfg.SessionTicketsDisabled = true
	}
	if c.Mode == RequiredTrusted {
		// Still RequestClientCert, not RequireAndVerifyClientCert: Go's check
		// demands the clientAuth key usage, which public CAs have stopped
		// issuing, cannot check XMPP names, and would fail a peer without a
		// certificate with an untyped error; verify says ErrNoPeerCertificate.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			var known window
			if cs.DidResume {
				known = st.verified
			}
			var err error
			st.verified, err = c.check(name, cs, clientUsage, known)
			return err
		}
	}
	return cfg, nil
}

// DirectServerConfig is ServerConfig for XEP-0368 direct TLS listeners: the
// peer is not known before the handshake, and ALPN "xmpp-server" is
// selected when the client offers it.
func (c *Config) DirectServerConfig() (*tls.Config, error) {
	cfg, err := c.ServerConfig("")
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = []string{ALPN}
	return cfg, nil
}

// VerifyPeer checks a finished handshake's peer certificate against the
// domain, whatever the mode: the chain to Roots at Time (the leaf may carry
// the serverAuth or the clientAuth key usage), then the name (VerifyName). The Manager calls it in RequiredTrusted mode for every
// domain an incoming stream claims that the handshake could not check (a
// header without 'from', direct TLS, dialback piggybacking). The error is a
// *VerifyError.
func (c *Config) VerifyPeer(remote string, cs tls.ConnectionState) error {
	name, err := domain.Normalize(remote)
	if err != nil {
		return &VerifyError{Domain: remote, Err: err}
	}
	return c.verify(name, cs, clientUsage)
}

// Key usages accepted on the peer's leaf. An s2s certificate is used both
// ways, and many carry only serverAuth (Let's Encrypt dropped clientAuth in
// 2025), so an incoming peer may present either.
var (
	serverUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// verify checks the chain and, when name is not "", the name.
func (c *Config) verify(name string, cs tls.ConnectionState, usages []x509.ExtKeyUsage) error {
	_, err := c.check(name, cs, usages, window{})
	return err
}

// check is verify for a handshake: when known covers now, the peer's chain
// is one that a handshake under the same rules verified (the session this
// connection resumed), and only the name is checked, as crypto/tls does
// for its own resumed sessions; otherwise the chain is verified and its
// window returned, for the session to carry.
func (c *Config) check(name string, cs tls.ConnectionState, usages []x509.ExtKeyUsage, known window) (window, error) {
	if len(cs.PeerCertificates) == 0 {
		return window{}, &VerifyError{Domain: name, Err: ErrNoPeerCertificate}
	}
	leaf := cs.PeerCertificates[0]
	w := known
	if !known.covers(c.now()) {
		opts := x509.VerifyOptions{
			Roots:         c.Roots,
			Intermediates: x509.NewCertPool(),
			KeyUsages:     usages,
		}
		if c.Time != nil {
			opts.CurrentTime = c.Time()
		}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		chains, err := leaf.Verify(opts)
		if err != nil {
			return window{}, &VerifyError{Domain: name, Err: fmt.Errorf("%w: %w", ErrUntrusted, err)}
		}
		w = windowOf(chains[0])
	}
	if name == "" {
		return w, nil
	}
	if err := VerifyName(leaf, name); err != nil {
		return window{}, &VerifyError{Domain: name, Err: err}
	}
	return w, nil
}

// clientCert presents Cert when a server asks; with none configured it
// presents nothing and lets the server decide.
func (c *Config) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c.Cert == nil {
		return &tls.Certificate{}, nil
	}
	return c.Cert.Certificate()
}
