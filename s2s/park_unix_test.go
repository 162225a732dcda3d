//go:build unix

package s2s

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/keepalive"
)

// tcpPair is a loopback TCP connection's two ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// waited runs waitReadable on c's socket and returns a channel closed when
// it returned.
func waited(t *testing.T, c net.Conn) <-chan struct{} {
	t.Helper()
	rc := rawConnOf(c)
	if rc == nil {
		t.Fatalf("no socket under %T", c)
	}
	done := make(chan struct{})
	go func() {
		waitReadable(rc)
		close(done)
	}()
	return done
}

// TestWaitReadable: a parked reader's wait on its socket returns for each
// thing its next read would meet — a byte that came before the wait began
// (no new edge for the poller), one that comes during it, the peer's close,
// the read deadline — and leaves the byte for the read.
func TestWaitReadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before acts on the connection before the wait, during while it
		// runs; read is what the server's read then gets.
		before, during func(client, server net.Conn)
		read           string
		err            error
	}{
		{name: "byte first", before: func(c, _ net.Conn) { c.Write([]byte("x")) }, read: "x"},
		{name: "byte first, waited for twice", before: func(c, s net.Conn) {
			// The first wait takes the poller's edge and leaves the byte:
			// a wait that trusted the poller alone would not return.
			c.Write([]byte("z"))
			waitReadable(rawConnOf(s))
		}, read: "z"},
		{name: "byte later", during: func(c, _ net.Conn) { c.Write([]byte("y")) }, read: "y"},
		{name: "peer closes", during: func(c, _ net.Conn) { c.Close() }, err: io.EOF},
		{name: "deadline", during: func(_, s net.Conn) { s.SetReadDeadline(past) }, err: errDeadline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcpPair(t)
			if tc.before != nil {
				tc.before(client, server)
			}
			done := waited(t, server)
			if tc.during != nil {
				tc.during(client, server)
			}
			select {
			case <-done:
			case <-time.After(wait):
				t.Fatal("the wait did not return")
			}
			var b [8]byte
			n, err := server.Read(b[:])
			switch {
			case tc.err == errDeadline:
				if !isTimeout(err) {
					t.Fatalf("read: %v, want the deadline's", err)
				}
			case !errors.Is(err, tc.err):
				t.Fatalf("read: %v, want %v", err, tc.err)
			case string(b[:n]) != tc.read:
				t.Fatalf("read %q, want %q: the wait took the byte", b[:n], tc.read)
			}
		})
	}
}

// errDeadline marks TestWaitReadable's case whose read meets the deadline.
var errDeadline = errors.New("deadline")

// TestRawConnOf: the socket is found under TLS and under the layers of
// ours that keep no bytes of their own (the keepalive monitor's,
// MaxIncoming's, the direct TLS listeners' mark, the sniffing layer once
// its byte is given back), and not where there is none or a layer still
// holds a byte.
func TestRawConnOf(t *testing.T) {
	client, _ := tcpPair(t)
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	sem := make(chan struct{}, 1)
	sem <- struct{}{}
	for _, tc := range []struct {
		name   string
		conn   net.Conn
		socket bool
	}{
		{"tcp", client, true},
		{"tls over keepalive over the bound", tls.Client(&keepalive.Conn{Conn: &boundConn{Conn: client, sem: sem}}, &tls.Config{}), true},
		{"marked", &markedConn{Conn: client}, true},
		{"sniffed, byte given back", &prefixConn{Conn: client}, true},
		{"sniffed, byte held", &prefixConn{Conn: client, prefix: []byte{'<'}}, false},
		{"pipe", p1, false},
		{"tls over a pipe", tls.Client(p1, &tls.Config{}), false},
	} {
		if got := rawConnOf(tc.conn) != nil; got != tc.socket {
			t.Errorf("%s: socket found %v, want %v", tc.name, got, tc.socket)
		}
	}
}
