//go:build unix

package testnet

import (
	"fmt"
	"net/netip"
	"syscall"
)

// holdPort binds a TCP socket to 127.0.0.1 on a port the kernel picks and
// does not listen on it.
func holdPort() (netip.AddrPort, func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return listenAndClose()
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return netip.AddrPort{}, nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return netip.AddrPort{}, nil, fmt.Errorf("getsockname: %w", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		syscall.Close(fd)
		return netip.AddrPort{}, nil, fmt.Errorf("getsockname: %T", sa)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)), func() { syscall.Close(fd) }, nil
}
