// Command federate shows federation working: two XMPP domains, each served by
// its own s2s.Manager in this one process, link over loopback TCP and
// exchange messages.
//
//	go run ./examples/federate
//
// With no arguments it needs no files: it makes a throw-away certificate
// authority and one certificate per server, starts two servers on free
// 127.0.0.1 ports with use_starttls = "required_trusted", one hosting
// a.example and chat.a.example, the other b.example and chat.b.example,
// points each at the other through address overrides, and sends a message
// from each domain to each domain of the other server, both ways: eight.
// The first link runs over a TLS stream whose certificates both sides
// verify, and is authenticated by them with SASL EXTERNAL (XEP-0178); the
// other three pairs are authenticated with dialback on that same stream
// (piggybacking, XEP-0220), since the certificate names both domains of a
// server, and every answer comes back over it (XEP-0288): one connection
// carries all sixteen links. With -config and a certificate the peer does
// not trust, Server Dialback takes over, and -dialback turns SASL EXTERNAL
// off to show dialback over verified TLS. It prints what happens, one
// line per step:
//
//	a.example and chat.a.example listen on 127.0.0.1:41771, b.example and chat.b.example on 127.0.0.1:37421 (use_starttls = "required_trusted")
//	link up    a.example -> b.example  out  TLS1.3 TLS_AES_128_GCM_SHA256 sasl-external
//	message    a.example -> b.example  delivered: "Hello from a.example"
//	…
//	link up    chat.a.example -> chat.b.example  out  TLS1.3 TLS_AES_128_GCM_SHA256 dialback
//	message    chat.a.example -> chat.b.example  delivered: "Hello from chat.a.example"
//	…
//	connections: 1 between a.example and b.example, carrying both directions of 4 domain pairs
//	done: 8 messages delivered, 0 bounced
//
// and exits 0. It exits 1 when a message is bounced or the run takes longer
// than -timeout, saying why, and 2 for bad flags or a bad configuration file.
// Diagnostics of the Managers (log/slog) go to stderr: warnings only, or
// everything with -v.
//
// # Your own options
//
// -config FILE replaces the built-in options with an [s2s] section read from
// FILE: a whole MongooseIM-style configuration with an [s2s] table, or just
// the section's keys. Both domains use that one section, so the file is where
// to try out use_starttls modes, ciphers, host_policy or connection
// timeouts. Three things differ from the built-in run:
//
//   - The demo still picks the ports, and it replaces any address entry for
//     the two demo domains with the loopback port the other domain listens
//     on; other address entries are kept.
//   - Each server hosts its one domain (no chat. domain), since the file's
//     certificate names only the two.
//   - Certificates come from the file, not from the throw-away CA: with
//     use_starttls other than "false", certfile is presented by both domains,
//     so it must name both (two DNS names, or a wildcard such as
//     *.example). For "required_trusted", -cafile names a PEM file of the
//     roots that issued it; without -cafile the system roots are used.
//
// For example, with this file both domains speak TLS without checking
// certificates (Server Dialback still authenticates them):
//
//	[s2s]
//	  use_starttls = "required"
//	  certfile = "both.pem"
//	  ciphers = "TLSv1.2"
//
// and with this one nothing is encrypted:
//
//	[s2s]
//	  use_starttls = "false"
//
// -domains A,B renames the two domains (for a certfile that names others).
package main
