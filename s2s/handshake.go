package s2s

import (
	"context"
	"crypto/tls"
	"net"
)

// secure is the one TLS step of every stream, both directions, STARTTLS
// and direct TLS alike: it runs the handshake on conn as the client (we
// opened the connection) or the server, and returns the new connection
// layer with its state. The callers differ only in the tls.Config, which
// the starttls package builds per mode and carries the certificate and
// required_trusted checks, and in what they say before (<starttls/>,
// <proceed/>) or nothing (direct TLS).
func (m *Manager) secure(ctx context.Context, conn net.Conn, cfg *tls.Config, client bool) (net.Conn, tls.ConnectionState, error) {
	var tc *tls.Conn
	if client {
		tc = tls.Client(conn, cfg)
	} else {
		tc = tls.Server(conn, cfg)
	}
	if err := handshake(ctx, tc); err != nil {
		return nil, tls.ConnectionState{}, err
	}
	return m.tapped(tc), tc.ConnectionState(), nil
}

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
