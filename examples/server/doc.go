// Command server is a small XMPP server built on the federation library: it
// serves client connections for one or more domains and federates with
// other servers through an s2s.Manager.
//
//	go run ./examples/server -config server.toml
//
// It is the reference host of the library: the whole embedding, with client
// sessions on one side and the Manager on the other, in a few files.
//
//   - Clients (c2s) connect with mellium's server-side session: STARTTLS
//     (always required), SASL SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN (mellium.im/sasl),
//     resource binding.
//   - Stanzas are routed between local users, the server itself and remote
//     domains: messages, presence (directed presence, subscription
//     requests and answers, and broadcast to subscribers, kept in memory)
//     and iq.
//   - A stanza the Manager cannot send comes back to the sending client as
//     the stanza error the bounce names (remote-server-not-found,
//     remote-server-timeout, policy-violation, …). A stanza for a user this
//     server does not have, or who is offline, is answered with
//     service-unavailable, to a local or a remote sender alike.
//   - The server answers disco#info (XEP-0030) and ping (XEP-0199) for its
//     domains, and for its accounts' bare JIDs; a user's roster query gets
//     the subscriptions in memory.
//
// It is not a production server: nothing is stored (accounts are read at
// start, subscriptions live in memory and are lost at exit, messages to an
// offline user are refused, not kept), and there is no MUC, no stream
// management, no offline messages, no registration, no privacy lists, no
// message carbons, and no limits per user or per connection beyond a
// bounded queue per client and the stanza size: a client that sends more
// than max_stanza_size (of the [s2s] section) without completing a stanza
// is cut off with policy-violation, counted as bytes are read, before
// anything holds them.
//
// # Configuration
//
// One TOML file holds a [server] table and MongooseIM's [s2s] section, the
// same one every program of this module reads (see the README):
//
//	[server]
//	  domains = ["example.org"]
//	  c2s_listen = "0.0.0.0:5222"   # default 127.0.0.1:5222
//	  s2s_listen = "0.0.0.0:5269"   # default 127.0.0.1:5269
//	  certfile = "example.org.pem"  # for clients; default: s2s.certfile
//	  cafile = "roots.pem"          # s2s roots for required_trusted; default: the system's
//	  accounts = "accounts.txt"
//
//	[s2s]
//	  use_starttls = "optional"
//	  certfile = "example.org.pem"
//
// Relative file names are resolved against the configuration file's
// directory. The accounts file has one account per line, "user@domain
// password", with # comments; -user user@domain:password adds one from
// the command line (visible to other local users in the process list: for
// trying things out). A mistake in the file is reported with its file,
// line, column and key, and exits 2.
//
// The server prints where it listens on stdout ("c2s listening on ADDR",
// "s2s listening on ADDR"; a port of 0 picks a free one), logs connections
// and bounces to stderr (everything with -v), and on SIGINT or SIGTERM ends
// client streams with system-shutdown and drains its s2s queues.
package main
