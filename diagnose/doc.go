// Package diagnose tells whether a local domain can federate with a remote
// one and, when it cannot, what to fix first. It runs every step an
// outgoing link runs (the policy, SRV records of both services and the
// addresses of their targets, TCP to each target with its time, the stream
// header and features, STARTTLS or direct TLS with the version, cipher,
// chain, trust, RFC 6125 name, expiry and key usage of the remote
// certificate and of ours, the authentication methods offered) and, when
// the caller makes it possible, an authentication attempt by a real
// s2s.Manager built from the same configuration. It stops at no failure, so
// one run shows every problem.
//
// Each Check is ok, a warning or a failure, belongs to one s2s.Step (the
// words the Manager's bounce reasons and link failure events use, and the
// metrics' step label), and says what was found and, when something is
// wrong, what to do:
//
//	rep, err := diagnose.Run(ctx, diagnose.Config{S2S: cfg}, "example.org", "example.net")
//	if err != nil { … } // bad arguments only
//	rep.WriteText(os.Stdout)
//	if !rep.CanFederate() { first, _ := rep.FirstFailure(); … }
//
// It needs no running Manager: it uses the resolver, starttls and dialback
// packages as a link does. The command examples/diagnose and the status
// page's form (package s2s/status) run it.
package diagnose
