package s2s

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/policy"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// Defaults of the Config fields that are not MongooseIM options.
const (
	DefaultQueueLength        = 1000
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultNegotiationTimeout = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
	// DefaultKeepAlive finds a half-open link within two minutes, well
	// inside the idle timeouts peers announce, at the cost of one small
	// probe per minute on a link the peer is silent on.
	DefaultKeepAlive = time.Minute
)

// Config configures a Manager: the [s2s] options plus the host's callbacks,
// in the style of crypto/tls.Config. IsLocal, Deliver and Bounce are
// required; every other field has a documented zero value.
type Config struct {
	// S2S holds the MongooseIM [s2s] options (config.Default, Parse or Load).
	S2S config.S2S

	// IsLocal reports whether a domain (lower-case A-label) is served by the
	// host. It is asked for every incoming stream and every dialback
	// request, so the set of local domains may change while the Manager
	// runs. It must be safe for concurrent use.
	IsLocal func(domain string) bool

	// Deliver receives each stanza that arrived from an authenticated remote
	// domain for a local one. The domains of its 'from' and 'to' are in
	// canonical form (lower-case A-labels, as IsLocal gets them), in Raw
	// too: a peer that wrote them otherwise had them rewritten, so that the
	// host reads the domains that were authenticated. Stanzas of one incoming stream are delivered in
	// order, from that stream's goroutine: a slow Deliver slows that stream
	// only. Shutdown waits (until its context ends) for the Deliver calls in
	// progress, so Deliver must not wait for Shutdown to return.
	Deliver func(Stanza)

	// Bounce receives each stanza given to Send that could not be written,
	// with the reason. Bounce.Reply builds the error stanza to route back
	// to the sender. It is called on a goroutine of the Manager's own, one
	// bounce at a time, in the order the bounces were made; never on the
	// goroutine of a Send, Reload or Shutdown call, so it may block, even
	// until such a call returns. A slow Bounce delays later bounces, not
	// links. Manager.Done says when the last one has returned.
	Bounce func(Bounce)

	// Observer, if set, receives events for metrics and logging (see
	// Observer for where it is called).
	Observer Observer

	// Logger receives the Manager's logs; nil means slog.Default().
	// Secrets (the dialback secret, private keys) are never logged.
	Logger *slog.Logger

	// Resolver turns a remote domain into connection targets; nil means the
	// DNS resolver of the resolver package, configured from S2S (address,
	// outgoing.port, outgoing.ip_versions, dns.timeout, dns.retries).
	Resolver resolver.Resolver

	// Policy decides which remote domains may link with us, in both
	// directions; nil means the rules of S2S (default_policy, host_policy),
	// replaced by Reload. It is asked per link, not per stanza: Send asks
	// it when a remote domain gets a link, and again for the next stanza
	// after each Reload (which also asks it about every live link); an
	// incoming stream asks it for each domain pair authenticated. When a
	// Policy's answers change, live links learn of it at the next Reload.
	Policy policy.Policy

	// DialContext opens TCP connections, for example through a proxy; nil
	// means a net.Dialer. A connection that wraps a socket and keeps no
	// bytes of its own should offer it (syscall.Conn, as *net.TCPConn
	// does): a quiet link's reader then waits on the socket with a 2 KiB
	// stack instead of in its read with 4 KiB or more.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// RootCAs are the trusted roots for use_starttls = "required_trusted";
	// nil means the system pool.
	RootCAs *x509.CertPool

	// Certificate, if set, is presented instead of the certfile option;
	// with it, a use_starttls other than "false" needs no certfile.
	Certificate starttls.CertSource

	// Keys computes dialback keys; nil means dialback.Secret(S2S.Shared).
	// When S2S.Shared is the random secret the config package drew
	// because shared was left out (config.S2S.SharedGenerated), the
	// Manager uses one random secret of its own for its whole lifetime
	// instead, kept across Reload, so that reloading such a file does not
	// refuse the keys made before. The nodes of a cluster need one secret
	// (an explicit shared, or one KeySource), so that any node can answer
	// a <db:verify> for the others.
	Keys dialback.KeySource

	// DisableSASLExternal turns SASL EXTERNAL (XEP-0178) off, leaving
	// dialback as the only authentication. By default it is on, in both
	// directions: incoming streams offer it when TLS is up and the peer's
	// certificate chains to the trusted roots (RootCAs) and names the
	// stream's 'from', with policy applied as to dialback; outgoing streams
	// use it when it is offered and we have a certificate, and fall back to
	// dialback on a new stream when the peer refuses it. LinkInfo.Auth says
	// which method won.
	DisableSASLExternal bool

	// DisableStreamManagement turns XEP-0198 off in both directions:
	// incoming streams do not offer it and outgoing streams do not enable
	// it when offered. By default it is on: a peer that enables it on its
	// stream to us learns which of its stanzas the host was given (counted
	// as they are handed to Deliver), and a stanza we write to a stream whose peer
	// enabled it is kept until the peer acknowledges it, and sent again on
	// a new link if the stream dies first (see the README's "When
	// something fails" for what that guarantees).
	DisableStreamManagement bool
	// DisableBidi turns bidirectional streams (XEP-0288) off. By default
	// they are on: incoming streams offer <bidi/>, and outgoing streams
	// ask for it when offered and then take the peer's stanzas for the
	// reverse of the pairs authenticated on them. A host turns it off
	// when something between it and its peers (a proxy, an accounting
	// system) expects each stream to carry one direction.
	DisableBidi bool

	// DisableTLSResumption turns TLS session resumption off
	// (starttls.Config.DisableResumption), in both directions. By default
	// a new link to a server we linked to before resumes its TLS 1.3
	// session: no certificates are sent and no signatures made or checked,
	// while use_starttls's checks still run on the certificates the
	// session carries, and a session is resumed only by a link that would
	// present the same certificate of ours to the same remote domain.
	// Incoming streams issue tickets sealed with keys drawn at random for
	// the Manager's TLS settings, kept in memory only and rotated. Reload
	// keeps the keys and the session cache when use_starttls, ciphers and
	// RootCAs are unchanged (starttls.Config.ShareSessions), and otherwise
	// starts afresh, so that nothing made under the old rules resumes
	// under the new.
	DisableTLSResumption bool

	// DisablePiggyback turns dialback piggybacking off for the pairs we
	// link: each (local, remote) pair then opens a connection of its own.
	// By default a new pair first asks to be authenticated on an outgoing
	// stream we already have to the server that hosts its remote domain
	// (same address and port, and under TLS a certificate that names the
	// domain), and opens a connection only when none qualifies or the
	// peer refuses. Pairs that peers piggyback on our incoming streams
	// are accepted either way (within MaxDialbackPerStream).
	DisablePiggyback bool

	// KeepAlive is how long an outgoing link may go without a sign of
	// life from the peer before it is probed: an XEP-0198 <r/> when
	// stream management is on, otherwise an XEP-0199 ping, whose answer
	// comes back on the peer's own stream to us. With no answer within
	// KeepAlive again (and, with stream management, whenever a <r/> waits
	// that long for its <a/>), the link is declared dead and handled as
	// one the peer dropped: what it had not acknowledged goes to a new
	// link. So a half-open link is found within 2 × KeepAlive of the last
	// thing heard from it. Probes do not count as traffic for
	// IdleTimeout. An incoming stream on which the peer enabled XEP-0198
	// is probed with <r/> the same way, any byte from the peer (whitespace
	// included) counting as an answer; other incoming streams cannot be
	// probed (the peer owes us no answer) and end after IdleTimeout.
	//
	// The ping's answer is the peer's host's: a server answers XEP-0199
	// pings to its domain (Prosody and ejabberd do; a host built on this
	// package must, as examples/server does), on its own stream to us. A
	// peer that cannot open a stream to us cannot answer, and its link
	// without stream management is closed and opened again every
	// 2 × KeepAlive; set it negative for such deployments. 0 means
	// DefaultKeepAlive; negative turns probing off.
	KeepAlive time.Duration

	// Cluster, if set, makes the Manager one node of a cluster that serves
	// the same domains: links are claimed in a shared Registry and stanzas
	// for a link another node holds are forwarded to it (see Cluster).
	Cluster *Cluster

	// QueueLength bounds the stanzas waiting on one outgoing link; a stanza
	// sent to a full queue is bounced with resource-constraint. 0 means
	// DefaultQueueLength.
	QueueLength int

	// IdleTimeout closes a link that carried no stanza for this long; a
	// bidi stream (XEP-0288) is idle only when neither direction carried
	// one. 0 means DefaultIdleTimeout; a negative value keeps idle links
	// open.
	IdleTimeout time.Duration

	// NegotiationTimeout bounds an incoming stream's time from connect to
	// its first authenticated pair (MongooseIM's state_timeout), and a
	// verification-only stream's whole life. Outgoing, it bounds each
	// target from its TCP connection to the authenticated stream (TLS,
	// features, authentication); a target over it is given up and the next
	// one tried. DNS (dns.timeout, dns.retries) and each TCP attempt
	// (outgoing.connection_timeout) have their own bounds. 0 means
	// DefaultNegotiationTimeout.
	NegotiationTimeout time.Duration

	// WriteTimeout bounds each write to a peer; a peer that stops reading
	// loses its link and the stanzas being written are bounced. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration

	// MaxDepth bounds how deeply the elements of one stanza may nest; a
	// deeper one ends the stream with policy-violation. 0 means
	// DefaultMaxDepth. The size of an element is S2S.MaxStanzaSize.
	MaxDepth int

	// MaxIncoming bounds the connections each listener given to Serve
	// holds at once; over it, Serve stops accepting until one closes,
	// and new peers wait in the kernel's backlog. 0 means DefaultMaxIncoming; negative means no bound.
	MaxIncoming int

	// MaxPerAddress bounds the incoming streams from one remote IPv4
	// address or IPv6 /64 network for one domain pair (the 'from' and
	// 'to' of the stream header): peers open one stream per pair, so a
	// server hosting many domains behind one address is not refused.
	// Until its header arrives a stream counts per address alone, against
	// the same bound, so that connections that never send a header are
	// bounded too. One more is answered with a policy-violation stream
	// error. 0 means
	// DefaultMaxPerAddress; negative means no bound.
	MaxPerAddress int

	// MaxDialbackPerStream bounds the <db:result> requests a peer may send
	// on one incoming stream (piggybacked pairs and repeats included), so
	// that one stream cannot make us open verification connections without
	// end; one more ends the stream with policy-violation. 0 means
	// DefaultMaxDialbackPerStream.
	MaxDialbackPerStream int

	// MaxVerifications bounds the dialback verifications (questions to an
	// authoritative server, each a connection unless a link to it is up)
	// in flight at once for all incoming streams; a request over it is
	// answered with a resource-constraint dialback error of type wait.
	// 0 means DefaultMaxVerifications; negative means no bound.
	MaxVerifications int

	// MaxVerificationsPerDomain bounds the verifications in flight toward
	// one remote domain, answered as for MaxVerifications. 0 means
	// DefaultMaxVerificationsPerDomain; negative means no bound.
	MaxVerificationsPerDomain int

	// DialbackFailureTTL is how long a failed verification (key refused,
	// authoritative server not found, unreachable or slow) is remembered
	// for its domain pair and the peer's address: requests for the pair
	// from that address get the same answer without asking again. 0 means
	// DefaultDialbackFailureTTL; negative remembers nothing.
	DialbackFailureTTL time.Duration

	// clock is replaced by tests.
	clock clock
	// probed, set by tests, is called after a keepalive probe was queued
	// for a link (smout.go).
	probed func(pair)
	// probedIn, set by tests, is called after an incoming stream's
	// keepalive <r/> was written, with the stream's local domain and peer.
	probedIn func(local, peer string)
	// answered, set by tests, is called when the peer answered a link's
	// <r/> or its keepalive ping (smout.go).
	answered func(pair)
	// forgot, set by tests, is called after a failed pair's link has been
	// forgotten (forget.go).
	forgot func(pair)
	// answering, set by tests, is called when an incoming dialback
	// request was found valid and its pair registered, before the answer
	// is written (dialback.go); p is the pair as (local, remote).
	answering func(p pair)
	// parked, set by tests, is called when a stream's reader has handed
	// its loop to a new goroutine (park.go); in says which side.
	parked func(in bool)
	// waiting, set by tests, is called when a parked reader starts
	// waiting, with whether it found a socket to wait on (waitParked).
	waiting func(socket bool)
	// startingStack, set by tests, replaces the runtime's starting
	// stack size that the park sweep checks (park.go).
	startingStack func() uint64
	// sweepEvery, set by tests, runs the park sweep this often in real
	// time, whatever the Manager's clock (park.go).
	sweepEvery time.Duration
	// linger, set by tests, replaces ownerLinger: how long a link's owner
	// with nothing to do waits for more before it parks (outgoing.go).
	linger time.Duration

	// tap, set by tests, wraps each connection layer of a stream (the TCP
	// connection, then TLS over it) to record the XML on the wire.
	tap func(net.Conn) net.Conn
}

// settings is everything Reload may replace, swapped as one value.
type settings struct {
	s2s      config.S2S
	tls      *starttls.Config
	policy   policy.Policy
	table    *policy.Table // the config-backed policy, when Config.Policy is nil
	resolver resolver.Resolver
	dialer   *resolver.Dialer
	keys     dialback.KeySource
	// random is the dialback secret used while S2S.Shared is one the
	// config package drew (shared left out): drawn once for the Manager's
	// lifetime and handed from each settings to the next, because a new
	// random secret on every Reload would refuse every key made before
	// it, verifications in flight included.
	random string
}

// newSecret draws a dialback secret as the config package does for an
// absent shared option: 10 random bytes, hex.
func newSecret() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrConfig is wrapped by New and Reload for a configuration they cannot use.
var ErrConfig = errors.New("s2s: bad configuration")

func (c *Config) newSettings(s config.S2S, old *settings) (*settings, error) {
	st := &settings{s2s: s.Clone()}

	mode, err := starttls.ParseMode(s.UseStartTLS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	ciphers, err := starttls.ParseCiphers(s.Ciphers)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	tc := &starttls.Config{Mode: mode, Roots: c.RootCAs, Ciphers: ciphers, DisableResumption: c.DisableTLSResumption}
	switch {
	case c.Certificate != nil:
		tc.Cert = c.Certificate
	case s.CertFile != "":
		cf, err := starttls.LoadCertFile(s.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		tc.Cert = cf
	default:
		// No certificate from either place: the error points at the
		// use_starttls that asks for one, when it came from a file.
		if err := s.CheckCertFile(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if err := tc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if old != nil {
		tc.ShareSessions(old.tls)
	}
	st.tls = tc

	// The config-backed policy table is shared across reloads so that a
	// host holding it sees the new rules; it is replaced last, once nothing
	// else can fail.
	var rules policy.Rules
	if c.Policy != nil {
		st.policy = c.Policy
	} else {
		if rules, err = policy.RulesFromConfig(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if old != nil && old.table != nil {
			st.table = old.table
		} else if st.table, err = policy.New(rules); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		st.policy = st.table
	}

	if c.Resolver != nil {
		st.resolver = c.Resolver
	} else {
		rc := resolver.Config{
			Port:       s.Outgoing.Port,
			IPVersions: s.Outgoing.IPVersions,
			Timeout:    s.DNS.Timeout,
			Retries:    s.DNS.Retries,
		}
		if len(s.Address) > 0 {
			rc.Overrides = make(map[string]resolver.Override, len(s.Address))
			for _, a := range s.Address {
				rc.Overrides[a.Host] = resolver.Override{Addr: a.IP, Port: a.Port}
			}
		}
		r, err := resolver.New(rc)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		st.resolver = r
	}
	st.dialer = &resolver.Dialer{Timeout: s.Outgoing.ConnectionTimeout, DialContext: c.DialContext}

	switch {
	case old != nil:
		st.random = old.random
	case s.SharedGenerated():
		st.random = string(s.Shared)
	default:
		st.random = newSecret()
	}
	switch {
	case c.Keys != nil:
		st.keys = c.Keys
	case s.SharedGenerated():
		st.keys = dialback.Secret(st.random)
	default:
		st.keys = dialback.Secret(s.Shared)
	}
	if old != nil && st.table != nil {
		if err := st.table.Replace(rules); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return st, nil
}
