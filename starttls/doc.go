// Package starttls is the TLS policy of s2s streams: the four use_starttls
// modes, the certfile certificate, OpenSSL cipher strings, and the RFC 6125 /
// XEP-0178 checks of a peer's certificate.
//
// It makes decisions and tls.Configs; it does not read or write streams.
// The stream code (the s2s Manager, or any server's own) asks it at each
// step of RFC 6120 §5:
//
//	cfg := &starttls.Config{Mode: starttls.Required, Cert: certFile}
//
//	// Incoming stream, before TLS:
//	features = append(features, cfg.Feature()...)
//	start, err := cfg.Incoming(firstElement.Name) // Proceed + tls.Server, or refuse
//	tlsCfg, err := cfg.ServerConfig(headerFrom)
//
//	// Outgoing stream, after reading the peer's features:
//	start, err := cfg.Outgoing(offered, required) // from ParseFeature
//	tlsCfg, err := cfg.ClientConfig(remoteDomain)
//
// # Modes
//
// False never offers or starts TLS. Optional offers it and starts it when
// offered. Required does too but refuses plain streams both ways; it does
// not check certificates, since Server Dialback authenticates the peer.
// RequiredTrusted additionally requires the peer's certificate, in both
// directions, to chain to Config.Roots and name the peer's domain: on
// outgoing streams the domain we dial, on incoming ones the stream's 'from'
// (and every further domain the stream claims, through VerifyPeer).
//
// # Errors and XMPP conditions
//
// All errors wrap package sentinels for errors.Is:
//
//   - ErrNotOffered, ErrPeerRequires (Outgoing): nothing was sent; close the
//     TCP connection and bounce queued stanzas with remote-server-not-found,
//     the error's text as explanation.
//   - ErrRequired (Incoming): send the wrapped stream.Error
//     (policy-violation) and close.
//   - ErrDisabled (Incoming): send Failure and close the stream.
//   - *VerifyError from a handshake (ErrUntrusted, ErrNameMismatch,
//     ErrNoPeerCertificate, ErrBadSAN): the TLS layer has already sent an
//     alert, so no stream error can follow; close the connection and, on
//     an outgoing stream, bounce with remote-server-not-found. From
//     VerifyPeer after a handshake: send the stream error not-authorized
//     and close (RFC 6120 §4.9.3.12: the claimed domain is not proven).
//
// # Session resumption
//
// A link to a server we linked to before resumes its TLS 1.3 session:
// no certificates are sent and no signatures made or checked, but the
// key exchange is made again (forward secrecy), and crypto/tls calls
// VerifyConnection on the resumed connection too, on both sides, with
// the certificates the session carries, so RequiredTrusted checks their
// names and their validity at the current Time as after a full handshake;
// only the chain's signatures, which the session's first handshake
// verified under the same rules, are not checked again. The state is a
// Config's, shared by every tls.Config it makes: ServerConfig seals
// tickets with keys drawn at random, in memory only, a new one every 12
// hours and each kept for 24; ClientConfig files sessions, at most
// SessionCacheSize, under the remote domain and the certificate of ours
// the handshake presents, since the server of a resumed session sees the
// certificate of its first handshake (SASL EXTERNAL reads the name from
// it). Nothing resumes when the certificate of ours changed, when any
// certificate of the peer's chain has expired, under another Config (a
// reload of the settings), or with TLS 1.2, whose resumption has no key
// exchange. DisableResumption turns it all off.
//
// # Ciphers
//
// ParseCiphers maps the ciphers option to versions and TLS 1.2 suites. Go
// does not let TLS 1.3 suites be chosen (it picks among its three itself),
// nor suite order, nor suites it deems insecure; a cipher string asking
// for any of those is an error naming the token, never silently trimmed.
package starttls
