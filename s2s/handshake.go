package s2s

import (
	"context"
	"crypto/tls"
)

// handshake runs tc's TLS handshake on a goroutine of its own and waits for
// it. The handshake (key exchange, certificate parsing and chain
// verification) is the deepest call tree a link ever runs; a goroutine's
// stack grows to fit it and stays that size while the goroutine lives. Run
// on the link's own goroutine, it left every idle link with stacks several
// times larger than its buffers; on a throwaway goroutine, that stack is
// freed when the handshake ends.
func handshake(ctx context.Context, tc *tls.Conn) error {
	done := make(chan error, 1)
	go func() { done <- tc.HandshakeContext(ctx) }()
	return <-done
}
