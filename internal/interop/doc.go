// Package interop proves federation with real XMPP servers: it starts
// Prosody and ejabberd, as Debian packages them, on loopback ports chosen at
// run time, and runs an s2s.Manager against them in both directions.
//
// The package is a test harness and its tests. Each server runs from a
// directory of the test's own (t.TempDir), is told to reach the test's
// domains on loopback without touching /etc or the network (Prosody through
// a small module that overrides its SRV resolver, ejabberd through static
// records in Erlang's DNS cache), is stopped by PID when the test ends, and
// has its log printed when the test fails.
//
// With Users in their configuration, both servers also open a client port
// and register those accounts, and StartClient logs a real client in to any
// server (slixmpp, from Debian's python3-slixmpp, run by a small script of
// ours that the test drives over its stdin and stdout).
//
// A missing server binary skips the tests with a message naming the Debian
// package to install, unless the environment has CI=true: in CI a missing
// server is a failure, so that the interop suite cannot silently vanish.
//
// Nothing here is safe for concurrent use by several goroutines; each peer
// belongs to the test that started it.
package interop
