// Package sm is XEP-0198 Stream Management as an s2s link needs it: the
// elements (<enable/>, <enabled/>, <failed/>, <r/>, <a h='N'/>), their
// encoding and a parser, and the counting on each side of a stream: a
// Sender keeps what it wrote until the peer acknowledges it and says when
// to ask for acknowledgements; a Receiver counts what it handled.
//
// Nothing here touches the network or a clock: the caller writes the bytes
// and passes the time, so every rule is tested without sockets or sleeps.
// Neither type is safe for concurrent use; the link that owns one
// serialises access (it is on the path of every stanza, and a lock here
// would be a second one there).
//
// # No resumption
//
// Stream resumption (XEP-0198 §5) is left out on purpose. On s2s it would
// let a new stream carry on the old one's counters, so that the peer says
// which of our unacknowledged stanzas it had handled and none is sent
// twice. No peer server offers it on s2s (Prosody's mod_smacks enables
// acks on s2s streams but "resumption on s2s is not currently supported";
// ejabberd and MongooseIM have no s2s stream management), and a resumed
// s2s stream must still be authenticated again (dialback or SASL EXTERNAL)
// because it is a new TCP connection. So a dead link's unacknowledged
// stanzas are resent on a new, freshly authenticated stream instead: a
// stanza the peer handled but had not acknowledged arrives twice, which
// the caller counts and reports; none is lost. We never ask for
// resumption in <enable/>, and answer a peer's resume='true' with an
// <enabled/> that grants none, which XEP-0198 §5 allows.
package sm
