// Package s2s is the server-to-server layer a Go XMPP server embeds: a
// Manager that opens, authenticates and keeps links to remote domains,
// accepts their streams, and moves stanzas between the network and the
// host's callbacks.
//
// The host gives the Manager its [s2s] options (package config) and three
// callbacks: IsLocal, asked on every stream so local domains may change at
// run time; Deliver, for each stanza that arrived from an authenticated
// remote domain; and Bounce, for each stanza that could not be sent, with an
// XMPP error condition and a reason. Bounce runs on a goroutine of the
// Manager's own, in order, never on the goroutine of the call that caused
// it, so a host cannot deadlock itself through it; Manager.Done says when
// the last one has returned after Shutdown. The host calls Send for stanzas
// to remote domains and Serve for each s2s listener.
//
// # Outgoing
//
// Send parses the stanza's envelope once and routes it by the domain of its
// 'to'. The policy is asked first (a denied host is bounced with
// policy-violation and nothing is opened). Each (local, remote) domain pair
// has one outgoing link, created on first use: its stanzas wait in a bounded
// queue, in order, while the link resolves the domain (package resolver),
// connects, negotiates TLS per use_starttls (package starttls) and
// authenticates with Server Dialback (package dialback); then the queue is
// written in batches, one flush each. When an attempt fails, what waited is
// bounced with remote-server-not-found or remote-server-timeout and a reason
// naming the cause, and the next attempt waits 1 s, doubled per failure up
// to max_retry_delay; stanzas sent meanwhile are bounced at once.
//
// # Incoming
//
// Serve reads each stream's header (its 'to' must be local), offers STARTTLS
// per use_starttls, and answers dialback as the receiving server (asking the
// remote authoritative server, over our own link to it when one is up) and
// as the authoritative server. Several domain pairs may be authenticated on
// one stream, each checked against the policy on its own. A stanza whose
// (from, to) pair is not authenticated on its stream ends the stream with a
// stream error; it is never delivered.
//
// # Streams
//
// The Manager negotiates s2s streams itself rather than with mellium's
// Session (see negotiate.go for why), using mellium for JIDs, stanza and
// stream errors. Stanzas cross the API as their exact bytes (Stanza.Raw,
// default namespace jabber:server) with the parsed envelope.
//
// # Where negotiation lives
//
// TLS is one step for both directions and both kinds (STARTTLS, direct
// TLS): Manager.secure in handshake.go, with the tls.Config the starttls
// package builds per mode. An incoming connection is a series of streams
// (epochs, incoming.go), one per header, ended by a restart; work started
// on one stream (a dialback verification) never answers on the next. The
// features an incoming stream offers are listed in inStream.writeFeatures
// and handled in inStream.read (incoming.go, external.go, limits.go); an
// outgoing stream reads and acts on them in negotiateOut (negotiate.go,
// external.go). A new stream feature is, for now, an entry in each of
// those places; the tests in transcript_test.go pin the bytes of every
// negotiation, so that such a change shows in testdata/transcript-*.xml.
package s2s
