// Package testnet holds loopback network helpers for the tests of this
// repository.
package testnet

import (
	"net"
	"net/netip"
	"testing"
)

// RefusedAddr returns a loopback address where connections are refused,
// for the rest of the test: a TCP port held by a socket that is bound and
// never listens. A port found by listening and closing again, as tests
// used to do, is free for any test running alongside to take, which then
// accepts what was meant to be refused; a bound socket keeps the port, and
// with nothing listening on it the kernel answers each connection with a
// reset.
func RefusedAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	ap, closeFn, err := holdPort()
	if err != nil {
		t.Fatalf("testnet: holding a refused port: %v", err)
	}
	t.Cleanup(closeFn)
	return ap
}

// listenAndClose is RefusedAddr's way where a socket cannot be bound
// without listening: the port may be reused by another test.
func listenAndClose() (netip.AddrPort, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap, func() {}, nil
}
