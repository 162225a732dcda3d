package s2s

import (
	"crypto/tls"
	"time"
)

// Direction says who opened a link.
type Direction uint8

// The two directions of a link.
const (
	Outgoing Direction = iota + 1 // we connected to the remote server
	Incoming                      // the remote server connected to us
)

// String returns "out" or "in".
func (d Direction) String() string {
	switch d {
	case Outgoing:
		return "out"
	case Incoming:
		return "in"
	}
	return "unknown"
}

// MarshalText returns String's text, so that JSON and logs show "out"/"in".
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Auth says how the remote domain of a link was authenticated.
type Auth uint8

// The authentication methods of a link. The zero Auth is "none": a link
// that failed before any method succeeded.
const (
	AuthDialback     Auth = iota + 1 // Server Dialback (XEP-0220)
	AuthSASLExternal                 // SASL EXTERNAL with the certificate (XEP-0178)
)

// String returns "dialback", "sasl-external" or "none".
func (a Auth) String() string {
	switch a {
	case AuthDialback:
		return "dialback"
	case AuthSASLExternal:
		return "sasl-external"
	case 0:
		return "none"
	}
	return "unknown"
}

// MarshalText returns String's text.
func (a Auth) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// LinkInfo describes one authenticated domain pair on a stream. An incoming
// stream carrying several pairs (dialback piggybacking) shows as several
// LinkInfos with the same Since.
type LinkInfo struct {
	// Node is the cluster node that holds the link, in ClusterLinks; it is
	// empty in Links and events.
	Node      string
	Direction Direction
	Local     string // our domain (A-label)
	Remote    string // the remote domain (A-label)
	// TLSVersion and CipherSuite are those of the stream; both 0 when the
	// stream is not encrypted.
	TLSVersion  uint16
	CipherSuite uint16
	// TLSResumed says the stream's TLS handshake resumed an earlier
	// session (Config.DisableTLSResumption) instead of a full handshake.
	TLSResumed bool
	Auth       Auth      // AuthDialback or AuthSASLExternal
	Since      time.Time // when the pair was authenticated
	StanzasIn  uint64    // stanzas delivered to the host from this pair
	StanzasOut uint64    // stanzas written for this pair
	// Queued is the number of stanzas waiting to be written on an
	// outgoing link; always 0 for an incoming one.
	Queued int
	// StreamManagement says XEP-0198 is on for the stream: on an outgoing
	// link, each stanza written is kept until the peer acknowledges it
	// (from our <enable/>, which goes out with the link's first stanzas,
	// on: a <failed/> answer turns it false, and what was kept counts as
	// written); on an incoming one, the peer keeps each stanza it sends
	// until we acknowledge it, which we do once it was handed to Deliver.
	StreamManagement bool
	// Unacked is the number of stanzas written on an outgoing link with
	// StreamManagement that the peer has not acknowledged yet; on a
	// stream several pairs share (dialback piggybacking), the stream's
	// count, every pair's together, since the peer acknowledges the
	// stream.
	Unacked int
	// StanzasResent counts the stanzas this outgoing link wrote a second
	// time: each had been written on a stream of the pair that died before
	// the peer acknowledged it, so the peer may have handled it then, and
	// gets it twice. A stanza is sent again once at most (see the README's
	// "When something fails").
	StanzasResent uint64
	// Stream identifies the connection that carries the pair, unique
	// within the Manager's life: pairs with the same Stream share one
	// connection (one TCP connection, one TLS session). A bidirectional
	// stream (XEP-0288) shows its pairs of both directions under one
	// Stream, and a stream with several authenticated pairs (dialback
	// piggybacking) each of them. 0 when the pair has no stream (a failed
	// attempt, an AuthFailed event).
	Stream uint64
}

// linkInfo is the one place a LinkInfo is made, for every event and for
// Links(), so that they describe a link alike. state is nil for a stream
// that is not encrypted (or a link that never came up).
func linkInfo(dir Direction, p pair, state *tls.ConnectionState, auth Auth, since time.Time, in, out uint64, queued int) LinkInfo {
	l := LinkInfo{Direction: dir, Local: p.local, Remote: p.remote, Auth: auth, Since: since,
		StanzasIn: in, StanzasOut: out, Queued: queued}
	if state != nil && state.HandshakeComplete {
		l.TLSVersion, l.CipherSuite, l.TLSResumed = state.Version, state.CipherSuite, state.DidResume
	}
	return l
}

// TLS returns the TLS version in the form "TLS1.3", or "none".
func (l LinkInfo) TLS() string {
	switch l.TLSVersion {
	case 0:
		return "none"
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return tls.VersionName(l.TLSVersion)
}

// Cipher returns the name of the cipher suite, or "none".
func (l LinkInfo) Cipher() string {
	if l.TLSVersion == 0 {
		return "none"
	}
	return tls.CipherSuiteName(l.CipherSuite)
}

// EventKind says what an Event reports. Each kind has a fixed name (String),
// used by the stub's JSON events and meant for metric labels.
type EventKind uint8

// The events an Observer receives. A failed outgoing attempt is one
// LinkFailed, whatever step failed; a peer we refused is one AuthFailed. The
// README's "When something fails" table says which failure gives which
// event, bounce condition and error.
const (
	// LinkUp: a domain pair was authenticated on a stream. Link is set.
	LinkUp EventKind = iota + 1
	// LinkDown: an authenticated pair's stream ended. Link is set; Err is
	// the reason, nil for a close by either side's </stream:stream>.
	LinkDown
	// AuthFailed: we refused a remote server's authentication of a pair on
	// an incoming stream: a dialback key that is not valid or could not be
	// verified, a SASL EXTERNAL attempt we do not accept, or a host the
	// policy denies. Link (Direction Incoming, Local, Remote; Auth when
	// known) and Err are set.
	AuthFailed
	// LinkFailed: an outgoing attempt to link a pair failed before the pair
	// was authenticated, at any step: DNS, connecting, TLS, the stream, or
	// the peer refusing our authentication (Err then wraps ErrAuth). Link
	// (Direction Outgoing, Local, Remote) and Err are set; Err is a
	// *StepError naming the step (StepOf), and its text starts with the
	// step's title, as the bounce reasons and the diagnosis do. The stanzas that
	// waited for the attempt are bounced, each with its own Bounced event.
	LinkFailed
	// Bounced: a stanza was handed to Config.Bounce. Bounce and Stanza are
	// set.
	Bounced
	// StanzaIn: a stanza was delivered to the host. Link, Stanza and Bytes
	// are set.
	StanzaIn
	// StanzaOut: a stanza was written to a stream. Link, Stanza and Bytes
	// are set.
	StanzaOut
)

// String returns the event's name: link-up, link-down, auth-failed,
// link-failed, bounce, stanza-in or stanza-out.
func (k EventKind) String() string {
	switch k {
	case LinkUp:
		return "link-up"
	case LinkDown:
		return "link-down"
	case AuthFailed:
		return "auth-failed"
	case LinkFailed:
		return "link-failed"
	case Bounced:
		return "bounce"
	case StanzaIn:
		return "stanza-in"
	case StanzaOut:
		return "stanza-out"
	}
	return "unknown"
}

// Event is what the Manager tells an Observer. Which fields are set depends
// on Kind.
type Event struct {
	Kind   EventKind
	Link   LinkInfo
	Stanza Stanza
	Bounce Bounce
	Bytes  int
	Err    error
	// Resent, for StanzaOut, says the stanza was written before on a
	// stream that died without the peer acknowledging it (XEP-0198): the
	// peer may get it twice.
	Resent bool
	// Setup is, for LinkUp, how long the pair took to authenticate: from
	// the start of the attempt (resolving the remote domain, for an
	// outgoing link) or from the accepted connection (incoming); for
	// LinkFailed and AuthFailed, how long the attempt ran until it failed.
	Setup time.Duration
}

// Observer receives the Manager's events, for metrics and logs. It is called
// synchronously from the goroutine that handles the link (Bounced from the
// goroutine that calls Config.Bounce, just before it), never from the
// goroutine of a Send, Reload or Shutdown call. It must be quick, must not
// call back into the Manager, and must be safe for concurrent use; Shutdown
// waits (until its context ends) for calls in progress.
type Observer func(Event)
