// Command diagnose tells whether a local domain can federate with a remote
// one, and if not, what to fix first. It runs every step a link runs (the
// policy, SRV and address records, TCP to each target, the stream, TLS and
// the certificates on both sides, the authentication methods offered) and
// stops at none, so one run shows every problem:
//
//	go run ./examples/diagnose -from LOCAL [-config FILE] [-json] DOMAIN
//
// It exits 0 when DOMAIN can federate with LOCAL, 1 when it cannot, and 2
// for bad usage (flags, arguments or configuration).
//
// Flags:
//
//	-from LOCAL     our domain (required)
//	-config FILE    the [s2s] section of LOCAL's server (use_starttls,
//	                certfile, ciphers, address, outgoing, dns, shared);
//	                without it, the defaults
//	-json           print the report as JSON instead of text
//	-cafile FILE    PEM roots to trust instead of the system's
//	-auth           also attempt to authenticate: LOCAL's running server
//	                must answer the remote server's dialback verification,
//	                so give -config with its shared secret
//	-listen ADDR    serve LOCAL's s2s port on ADDR while diagnosing, so
//	                the remote server can verify our key here (it must
//	                reach LOCAL at ADDR); implies -auth
//	-timeout D      bound of each step's network work (default: the
//	                configuration's outgoing.connection_timeout)
//
// The same diagnosis is a library call (package diagnose) and a form on the
// status page (package s2s/status).
package main
