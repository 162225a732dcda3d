// Command bench runs the side-by-side benchmarks of the s2s layer and prints
// one Markdown table: our Manager to our Manager on loopback, raw crypto/tls
// pushing the same bytes (the ceiling), the same Managers with the receiver
// in a child process (this command started again: main's first call serves
// it), and with -peers Prosody and ejabberd. The ping rows are also run
// with one Manager, the receiving one, answering the raw rows' load
// generator (the "pings to one Manager" rows). Each cell is the median of
// -runs runs; the ratio columns say how many times better ours is than the
// other column, and the two-process run than the in-process one.
//
// Usage:
//
//	go run ./examples/bench [-quick] [-runs N] [-messages N] [-pings N] [-links N,N]
//	    [-tls on,off] [-peers] [-two-process=false] [-v] [-cpuprofile FILE] [-memprofile FILE] [-idleprofile FILE]
//
// -quick runs a few hundred stanzas per experiment, to check that the
// harness works (CI does this); its numbers mean nothing. The profiles
// cover the whole run, for `go tool pprof`.
//
// It exits 0 when every experiment completed, 1 when one failed, 2 for bad
// flags.
package main
