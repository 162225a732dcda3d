// Package bench measures the s2s layer side by side with its ceiling and its
// peers: two Managers linked on loopback (library to library), raw
// crypto/tls pushing the same bytes; and, with Config.Peers, Prosody and
// ejabberd receiving the same load from the same Manager over s2s (started
// by the interop package's harness, logging at info). It runs each
// experiment several times and
// reports medians and the ratio of every other column to ours, so that a
// noisy two-core machine still gives comparable numbers.
//
// The experiments are:
//   - message throughput of one authenticated link (~200-byte messages);
//   - XEP-0199 ping round trips on one link, pipelined with a window of
//     100 and of 1000 outstanding pings;
//   - first-stanza latency: Send of the first stanza to a new domain until
//     its delivery (TCP, STARTTLS, dialback with the verification leg, or
//     SASL EXTERNAL); with TLS both for a first contact (full handshake)
//     and for a repeated link that resumes an earlier link's TLS session,
//     each against a raw connection of the same kind;
//   - heap and RSS per idle authenticated link, and the time to bring the
//     links up;
//   - allocations per stanza on the library path.
//
// With Config.TwoProcess, the message and ping experiments run a second time
// with the receiving Manager in a child process (the running executable,
// started again; its main must call ServePeerIfChild first), reported as the
// "two processes" column and its ratio to the in-process figure.
//
// Each runs with TLS on (use_starttls = "required_trusted", TLS 1.3) and off.
//
// It is a harness, not a test: Run is driven by the examples/bench command
// and, with tiny numbers, by the package's own test, which checks that every
// experiment completes. Nothing here is safe for concurrent use; one Run at
// a time.
package bench
