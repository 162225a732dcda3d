// Package policy decides which remote XMPP domains may federate with us.
//
// One decision answers both directions: whether we may open a link to a
// host, and whether we accept a link (or one more authenticated domain pair
// on a link) from it. MongooseIM's default_policy and host_policy say the
// same for both, and a host we refuse to call but would let call us could
// still exchange stanzas with us, so splitting the answer would only make
// the policy harder to reason about.
//
// A [Table] holds the configured rules: a default action and per-host
// entries, where an entry beats the default. Hosts are compared exactly,
// after the module's one normalisation (internal/domain: lower-case
// A-labels, no trailing dot), so "Bücher.Example." in a file and
// "xn--bcher-kva.example" on the wire are one host. A name that cannot be
// normalised is denied, whatever the default, because no rule can be said
// to cover it.
//
// Every [Decision] says which rule produced it, so a log line can tell
// "denied by default" from "denied by its host entry".
//
// A server with rules of its own (a database of partner domains, an admin
// API) implements [Policy], or wraps a function in [Func], and hands that to
// the s2s Manager instead of a Table.
package policy
