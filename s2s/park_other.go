//go:build !unix

package s2s

import "syscall"

// waitReadable is a parked reader's wait on a socket where there is no
// portable peek: none, the reader waits in its read (park.go).
func waitReadable(syscall.RawConn) {}
