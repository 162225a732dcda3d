// Package s2stest runs a fake remote XMPP domain on loopback for the tests of
// a host server that federates with the s2s package, in the way
// net/http/httptest runs a fake web server.
//
// NewServer starts a real s2s.Manager serving one domain on 127.0.0.1. The
// host wires its own Manager under test to it with the stub's Address (an
// address override for the [s2s] address option) and, when TLS is on, with
// RootCAs (the test CA that issued every certificate the stub makes) and a
// certificate from IssueCertificate for its own domains, so that even
// use_starttls = "required_trusted" works both ways. The stub needs to reach
// the host too, to verify the host's dialback keys and to send it stanzas:
// tell it where the host listens with WithPeer or AddPeer.
//
// The stub records every stanza the host sends it (Received, and Next to wait
// for the next one without sleeping), records the bounces of what it sends
// itself (Send, Bounces, NextBounce), and answers XEP-0199 pings. It can be
// told to misbehave so that the host's error paths can be tested. What the
// host's Manager then reports (its Bounce callback, its events, the error
// the event carries):
//
//   - SetDialback(DialbackDeny) refuses the host's dialback requests and
//     links, as a server whose policy denies the host does. The host: an
//     s2s.LinkFailed event (direction out) whose Err wraps s2s.ErrAuth, and
//     each waiting stanza bounced with remote-server-not-found.
//   - SetDialback(DialbackWrongKey) authenticates its own streams to the host
//     with keys it will not vouch for, as a spoofer would. The host: an
//     s2s.AuthFailed event (direction in) whose Err wraps
//     dialback.ErrInvalid; nothing is delivered, and the stub's stanzas
//     bounce on the stub's side.
//   - SetStall(true) accepts TCP connections and never says a byte. The
//     host: after its outgoing.connection_timeout, s2s.LinkFailed with a
//     timeout (Err wraps context.DeadlineExceeded) and bounces with
//     remote-server-timeout.
//   - Drop closes every connection at once, without a stream close, as a
//     crashed server would, and DropAfter does so once a number of stanzas
//     has arrived. The host: s2s.LinkDown for each link, Err not nil (the
//     connection ended before the stream was closed); stanzas already
//     written are lost with the connection (no XEP-0198), later ones open a
//     new link.
//   - Close (early) is a server that went away: s2s.LinkFailed (connection
//     refused) and bounces with remote-server-not-found.
//
// Events records the host's own events, for a test to wait on one kind for
// one domain pair (Events.Wait) instead of writing a channel and a loop.
//
// The stub is shut down by Close, which NewServer registers with the test's
// Cleanup. NewServer takes a TB, which *testing.T, *testing.B and *testing.F
// satisfy.
package s2stest
