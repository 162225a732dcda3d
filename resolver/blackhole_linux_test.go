//go:build linux

package resolver

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// blackHole returns a loopback address that never completes a TCP
// handshake: a socket listening with a backlog of 0 whose single queue slot
// is taken by a connection nobody accepts. Linux then drops further SYNs,
// as a firewall would.
func blackHole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4(sa.(*syscall.SockaddrInet4).Addr), uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue until a connection no longer completes. The short
	// timeout only decides when to stop filling; it asserts nothing.
	for range 8 {
		c, err := net.DialTimeout("tcp", ap.String(), 100*time.Millisecond)
		if err != nil {
			return ap
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the accept queue never filled")
	return ap
}
