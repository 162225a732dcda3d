//go:build unix

package s2s

import "syscall"

// waitReadable is a parked reader's wait (park.go): it returns once the
// socket has a byte for the reader, its end or an error, or the read
// deadline passed (the idle timeout, or the sweep's interrupt). The reader
// then reads as usual and meets whichever it was.
//
// The poller's wait is edge-triggered: a byte that came before the wait
// began raises no new edge. So readiness is asked of the socket itself,
// with a peek that leaves the byte where it is, before each wait.
func waitReadable(rc syscall.RawConn) {
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}
