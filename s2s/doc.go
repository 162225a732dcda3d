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
// # One connection between two servers
//
// Bidirectional streams (XEP-0288, bidi.go) and dialback piggybacking
// (XEP-0220 multiplexing, piggyback.go), both on by default, let two
// servers keep one connection for every pair of their domains, both ways:
// an incoming stream whose peer asked for bidi is the outgoing link of the
// reverse of each pair authenticated on it, our outgoing bidi streams
// deliver the peer's stanzas for those reverse pairs, and a new pair first
// asks to be authenticated on an outgoing stream we have to the same
// server (same address, and under TLS a certificate naming its domain)
// before opening one. With XEP-0198 such a stream's unacknowledged
// stanzas go back each to its own pair's link when it dies (requeue.go),
// in both directions of a bidi stream (smrev.go: what we send back over
// a peer's stream). Two servers whose first streams cross converge on one
// of them (bidimove.go). LinkInfo.Stream says which pairs share a
// connection.
// Config.DisableBidi and Config.DisablePiggyback turn them off.
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
// Both directions negotiate through one core, stream.go: a negotiator
// (the connection layer, swapped by the one TLS step Manager.secure in
// handshake.go for STARTTLS and direct TLS alike, and the state bits:
// secure, direct, SASL, authenticated) and an ordered table of stream
// features. An incoming stream (inStream) lists the entries that fit its
// state in <stream:features> and gives each element it reads to the entry
// of its namespace; an outgoing one (outStream, negotiateOut) reads the
// peer's features and lets each entry act in table order until one
// restarts the stream or it is authenticated. An incoming connection is a
// series of streams (epochs, incoming.go), one per header, ended by a
// restart; work started on one stream (a dialback verification) never
// answers on the next.
//
// # Where a new stream feature goes
//
// A stream feature is one entry of streamFeatures (stream.go) in a file of
// its own, named after it: starttls.go, external.go (SASL EXTERNAL),
// dialback.go, limits.go (XEP-0478), sm.go (XEP-0198), bidi.go
// (XEP-0288). An entry says which state bits it
// needs and rules out, and sets the funcs it uses: list (the child of our
// <stream:features>), guard (sees every incoming element first, as
// required STARTTLS does), handle (the incoming elements of its
// namespace), and negotiate (acts on the peer's features when we
// initiate; an entry placed after authentication in the table, with
// stateAuthed necessary, runs on the authenticated stream). State of its
// own per stream goes in a field of inStream or outStream, or in the
// epoch; which entries an incoming stream listed is epoch.listed. The
// tests in transcript_test.go pin the bytes of every negotiation, so that
// a change shows in testdata/transcript-*.xml.
//
// # Outgoing links: one owner goroutine each
//
// An outgoing link (outgoing.go) changes state only in its owner
// goroutine: connect, up, write, close when idle or drained, down, retry.
// The owner runs while the link has work and parks when it has none, so
// an idle up link costs its stream's reader and no more. Send, the
// stream's reader, timers, Shutdown and Reload only put work or a request
// in the link's mailbox under its mutex and wake the owner (wakeLocked,
// the one place an owner starts). The stream a link writes to is a
// linkStream (outconn.go): write a batch, learn that it ended, close it
// (one </stream:stream>, whoever asks), and give back what the peer did
// not acknowledge, which the link puts at the head of its queue for the
// next stream. XEP-0198 (smout.go) and streams shared by several links
// plug in there: an incoming XEP-0288 stream (inView, bidi.go) and
// another link's stream on which the pair was piggybacked (shareView,
// piggyback.go).
//
// # Reading the code
//
// Incoming, accept → negotiate → authenticate → deliver: Serve
// (manager.go), inStream.run, read and deliver (incoming.go), with the
// core and its entries (stream.go; dialback.go and external.go
// authenticate). Outgoing, Send → queue → dial → negotiate → write: Send
// (manager.go), enqueue and the owner's run (outgoing.go), dialTargets
// (dial.go), negotiateOut (stream.go), writeBatch (outconn.go). Every
// LinkInfo, of events and of Links, comes from linkInfo (event.go).
package s2s
