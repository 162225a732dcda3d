//go:build !unix

package testnet

import "net/netip"

func holdPort() (netip.AddrPort, func(), error) { return listenAndClose() }
