package diagnose

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// Config is what a diagnosis needs to act as the local server would. The
// zero value of every field but S2S has a documented meaning.
type Config struct {
	// S2S holds the [s2s] options of the local server: use_starttls,
	// certfile, ciphers, address, outgoing, dns, policies and shared.
	S2S config.S2S

	// Nameservers are the DNS servers to ask ("ip:port" or "ip"); empty
	// means those of /etc/resolv.conf, as the Manager uses.
	Nameservers []string

	// RootCAs are the roots trusted for the remote certificate; nil means
	// the system pool.
	RootCAs *x509.CertPool

	// Certificate, if set, is presented instead of S2S.CertFile.
	Certificate starttls.CertSource

	// DialContext opens TCP connections; nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Listener, if set, is served as the local domain's s2s port while the
	// diagnosis runs (Run closes it when it returns), so that the remote
	// server can verify our dialback key and connect back: the
	// authentication attempt is made. The remote server must be able to
	// reach the local domain at this listener's address.
	Listener net.Listener

	// Authenticate makes the authentication attempt without a Listener:
	// the local domain's running server answers the remote server's
	// dialback verification, which works when it uses S2S.Shared (or the
	// peer accepts our certificate for SASL EXTERNAL).
	Authenticate bool

	// DisableSASLExternal keeps the authentication attempt to dialback, as
	// s2s.Config.DisableSASLExternal does.
	DisableSASLExternal bool

	// Timeout bounds each step's network work (a DNS lookup, a connection,
	// a negotiation, the authentication attempt); 0 means
	// S2S.Outgoing.ConnectionTimeout, or 10 s when that is "infinity".
	Timeout time.Duration

	// Logger receives the authentication attempt's Manager logs; nil
	// discards them.
	Logger *slog.Logger

	// Now is the clock for certificate expiry; nil means time.Now.
	Now func() time.Time
}

// ErrUsage is wrapped by Run for arguments it cannot diagnose: an invalid
// domain or a configuration the Manager would refuse.
var ErrUsage = errors.New("diagnose: bad arguments")

// ExpiryWarning is how long before its expiry a certificate is reported as
// a warning.
const ExpiryWarning = 14 * 24 * time.Hour

// Run diagnoses whether local can federate with remote, running every step
// a link runs and stopping at none, and returns the report. It fails only
// for bad arguments (ErrUsage); whatever goes wrong on the network is in the
// report. It takes as long as the slowest steps: each is bounded by
// Config.Timeout, and ctx bounds the whole.
func Run(ctx context.Context, cfg Config, local, remote string) (*Report, error) {
	l, err := domain.Normalize(local)
	if err != nil {
		return nil, fmt.Errorf("%w: local domain %q: %w", ErrUsage, local, err)
	}
	r, err := domain.Normalize(remote)
	if err != nil {
		return nil, fmt.Errorf("%w: remote domain %q: %w", ErrUsage, remote, err)
	}
	if cfg.Listener != nil {
		defer cfg.Listener.Close()
	}
	p, err := newProbe(cfg, l, r)
	if err != nil {
		return nil, err
	}
	p.policy(ctx)
	p.ourCertificate()
	targets := p.dns(ctx)
	conn, target := p.connect(ctx, targets)
	feats := p.stream(ctx, conn, target)
	p.auth(ctx, feats)
	return p.rep, nil
}

// probe carries one diagnosis.
type probe struct {
	cfg           Config
	local, remote string
	rep           *Report
	tls           *starttls.Config
	res           *resolver.DNS
	timeout       time.Duration
	now           time.Time
}

func newProbe(cfg Config, local, remote string) (*probe, error) {
	p := &probe{cfg: cfg, local: local, remote: remote, rep: &Report{Local: local, Remote: remote}}
	s := cfg.S2S
	mode, err := starttls.ParseMode(s.UseStartTLS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	ciphers, err := starttls.ParseCiphers(s.Ciphers)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	p.tls = &starttls.Config{Mode: mode, Roots: cfg.RootCAs, Ciphers: ciphers, Time: cfg.Now}
	switch {
	case cfg.Certificate != nil:
		p.tls.Cert = cfg.Certificate
	case s.CertFile != "":
		cf, err := starttls.LoadCertFile(s.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		p.tls.Cert = cf
	}
	rc := resolver.Config{
		Port:        s.Outgoing.Port,
		IPVersions:  s.Outgoing.IPVersions,
		Timeout:     s.DNS.Timeout,
		Retries:     s.DNS.Retries,
		Nameservers: cfg.Nameservers,
	}
	if len(s.Address) > 0 {
		rc.Overrides = make(map[string]resolver.Override, len(s.Address))
		for _, a := range s.Address {
			rc.Overrides[a.Host] = resolver.Override{Addr: a.IP, Port: a.Port}
		}
	}
	if p.res, err = resolver.New(rc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	p.timeout = cfg.Timeout
	if p.timeout <= 0 {
		p.timeout = s.Outgoing.ConnectionTimeout
	}
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	p.now = time.Now()
	if cfg.Now != nil {
		p.now = cfg.Now()
	}
	return p, nil
}

// severity is Failure when use_starttls = "required_trusted" makes a
// certificate problem fatal, and Warning otherwise (the link then relies
// on dialback).
func (p *probe) severity() Status {
	if p.tls.Mode == starttls.RequiredTrusted {
		return Failure
	}
	return Warning
}
