// Command stub is a federation stub: a remote XMPP domain in a process of
// its own, for test suites written in any language. It serves the given
// domains with an s2s.Manager, answers pings, optionally echoes messages,
// sends what it reads on stdin and reports everything on stdout as JSON.
//
//	go run ./examples/stub -config stub.toml -domain stub.test[,other.test] -listen 127.0.0.1:5269 [-peer host.test=127.0.0.1:5270] [-echo]
//
// # Flags
//
//	-config FILE      the [s2s] options (MongooseIM names): a whole configuration
//	                  with an [s2s] table, or just the section's keys; without it
//	                  every option is at its default (plain text, dialback only)
//	-domain D[,D…]    the local domains the stub serves (required)
//	-listen ADDR      where to accept s2s streams; port 0 picks a free one, which
//	                  the "listening" event reports (required)
//	-peer D=IP:PORT   reach domain D at IP:PORT, skipping DNS (repeatable; an
//	                  entry of the address option for D is replaced)
//	-echo             answer every message by sending it back, from and to swapped
//	-cafile FILE      PEM roots trusted for use_starttls = "required_trusted"
//	                  (default: the system roots)
//	-shutdown-timeout how long a signal waits for queues to drain (default 10s)
//	-http ADDR        serve the status page (package s2s/status) on ADDR: the
//	                  links, the latest failures, a form that runs the
//	                  diagnosis, and /metrics (package s2s/metrics); the
//	                  "http" event reports the address
//	-max-per-address N
//	                  refuse more than N incoming streams from one address for one
//	                  domain pair (s2s.Config.MaxPerAddress); by default there is
//	                  no per-address bound, since every peer of a stub on
//	                  loopback comes from 127.0.0.1
//	-v                log everything to stderr, not only warnings
//
// The system under test reaches the stub through its own address override
// (or DNS) for the stub's domains; the stub reaches it through -peer, the
// address option of its configuration file, or a peer line on stdin.
//
// # Both sides on port 0
//
// A stub verifies the dialback keys of whoever links to it by connecting
// back, so it must know where its peers listen. When each side picks a free
// port at start (-listen 127.0.0.1:0), no side knows the other's port before
// both run: start the first stub, read its "listening" event, start the
// second with -peer FIRST=ADDR (or configure your server with it), then
// write
//
//	peer SECOND=127.0.0.1:PORT
//
// to the first stub's stdin and wait for its "peer" event before sending.
// The line replaces any address the stub had for that domain, for new
// streams.
//
// # Behaviour
//
// Every stanza that arrives from an authenticated remote domain is reported.
// An iq get or set carrying a XEP-0199 <ping xmlns='urn:xmpp:ping'/> for any
// address of a served domain is answered with an empty result; any other iq
// get or set is answered with service-unavailable, as RFC 6120 §8.2.3 asks
// of every entity. With -echo each message, except those of type error, goes
// back with its from and to attributes swapped and everything else kept.
//
// Each line of stdin holding one stanza (message, presence or iq; a
// jabber:client namespace is rewritten) is sent to the remote domain of its
// to attribute, with from naming a served domain. A line "peer D=IP:PORT"
// is a control line, as described above. Blank lines are skipped.
// When stdin ends the stub keeps serving.
//
// # Output
//
// stdout carries one JSON object per line and nothing else; logs (log/slog)
// go to stderr. The objects, with the fields each may carry:
//
//	{"event":"http","addr":"127.0.0.1:8080"}
//	{"event":"listening","addr":"127.0.0.1:40313","domains":["stub.test"]}
//	{"event":"stanza","from":"…","to":"…","id":"…","xml":"<message …>…</message>"}
//	{"event":"bounce","from":"…","to":"…","id":"…","condition":"remote-server-not-found","text":"…","xml":"…"}
//	{"event":"link-up","direction":"in","local":"stub.test","remote":"host.test","tls":"TLS1.3","cipher":"TLS_AES_128_GCM_SHA256","auth":"dialback"}
//	{"event":"link-down","direction":"out","local":"stub.test","remote":"host.test","reason":"closed"}
//	{"event":"peer","remote":"host.test","addr":"127.0.0.1:40314"}
//	{"event":"error","op":"send","error":"…","xml":"…"}
//
// "stanza" is a stanza received; "bounce" a stanza the stub could not send,
// with the XMPP error condition and the reason; "link-up" and "link-down"
// one authenticated domain pair on a stream, "in" when the remote server
// opened it ("tls" is "none" on a plain stream, and "reason" is "closed"
// for a clean close). "peer" confirms a peer line: new streams to remote
// reach addr. "error" reports a stdin line that is not a stanza (op
// "send"), a peer line that cannot be used (op "peer"), an outgoing link
// attempt that failed at any step, DNS to authentication (op "link",
// direction "out"), a remote server whose authentication the stub refused
// (op "auth", direction "in"), both with local and remote, or a listener
// that failed (op "serve").
//
// # Exit status
//
// 0 after SIGINT or SIGTERM: the stub stops accepting, lets its queues drain
// (each stanza written or reported as a bounce), closes its streams and
// exits. 2 for bad flags or a bad configuration, with the problem on stderr;
// a configuration error is printed as file:line:column: key: message. 1 when
// the listen address cannot be used or the listener fails later.
package main
