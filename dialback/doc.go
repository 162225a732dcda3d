// Package dialback implements Server Dialback (XEP-0220) with the key
// generation of XEP-0185, for all three roles a server plays in it.
//
// The package does not own a connection or a read loop. Whoever owns the
// stream (an s2s manager, or any server with its own stream code) reads
// top-level elements, hands the ones in the [NS] namespace to [Decode], and
// passes the decoded [Result] or [Verify] to the state that belongs to the
// stream it arrived on:
//
//   - on an outgoing stream, an [Outbound]: it builds our <db:result> requests
//     (initiating server), sends our <db:verify> requests to an authoritative
//     server on behalf of an incoming stream (receiving server, step 2), and
//     matches the answers that come back to requests it actually made;
//   - on an incoming stream, an [Inbound]: it answers <db:result> requests
//     after asking the authoritative server through an [Authority]
//     (receiving server), and answers <db:verify> requests by recomputing
//     the key (authoritative server);
//   - a [Pairs] per incoming stream records the (from, to) domain pairs that
//     dialback authenticated, which the stream owner consults for every
//     stanza. Several pairs may share one stream (multiplexing); each is
//     authenticated on its own.
//
// Every element this package writes uses the "db:" prefix, as XEP-0220
// requires and as some deployed servers insist on, so the stream header the
// caller writes must declare xmlns:db='jabber:server:dialback'.
//
// Domains in the elements are kept as the peer wrote them, because the key
// on the other side was computed over those exact strings; every comparison
// this package makes uses their normal form (lower-case A-labels).
package dialback
