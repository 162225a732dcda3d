package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// The raw runs are the ceiling: the same bytes over one loopback TCP
// connection, TLS 1.3 or plain, with a 16 KiB write buffer flushed when the
// sender has nothing more to send (as the Manager's writer does) and no XML
// parsing, routing or checks at all.

// env holds what every run of one harness invocation shares: the CA and
// the receiver's certificate (key generation is kept out of the timings).
type env struct {
	ca   *testcert.CA
	leaf *testcert.Leaf
}

func newEnv() (*env, error) {
	ca, err := testcert.NewCA("bench CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{receiverDomain}})
	if err != nil {
		return nil, err
	}
	return &env{ca: ca, leaf: leaf}, nil
}

// rawConns returns the two ends of a loopback connection, both through TLS
// when tlsOn is set (handshake done).
func rawConns(e *env, tlsOn bool) (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	select {
	case server = <-accepted:
	case err := <-errc:
		client.Close()
		return nil, nil, err
	}
	if !tlsOn {
		return client, server, nil
	}
	ts := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{e.leaf.TLS}, MinVersion: tls.VersionTLS13})
	tc := tls.Client(client, &tls.Config{RootCAs: e.ca.Pool(), ServerName: receiverDomain, MinVersion: tls.VersionTLS13})
	hs := make(chan error, 1)
	go func() { hs <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	if err := <-hs; err != nil {
		return nil, nil, err
	}
	return tc, ts, nil
}

// rawMessages pushes n copies of msg from client to server and returns the
// time until the server has read the last byte.
func rawMessages(ctx context.Context, e *env, tlsOn bool, n int, msg []byte) (time.Duration, error) {
	client, server, err := rawConns(e, tlsOn)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	defer server.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); server.Close() })
	defer stop()
	total := int64(n) * int64(len(msg))
	read := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := io.CopyN(io.Discard, server, total)
		read <- err
	}()
	w := bufio.NewWriterSize(client, 16<<10)
	for range n {
		if _, err := w.Write(msg); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := <-read; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// rawPings runs n request/answer exchanges of ping and result bytes with
// window requests outstanding. The server answers each complete request,
// flushing when it has read everything that arrived.
func rawPings(ctx context.Context, e *env, tlsOn bool, n, window int, ping, result []byte) (time.Duration, error) {
	client, server, err := rawConns(e, tlsOn)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	defer server.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); server.Close() })
	defer stop()

	served := make(chan error, 1)
	go func() { served <- echo(server, n, len(ping), result) }()

	d, err := pingClient(client, n, window, ping, result)
	if err != nil {
		return 0, err
	}
	if err := <-served; err != nil {
		return 0, err
	}
	return d, nil
}

// echo answers n requests of size bytes read from c with result each.
func echo(c net.Conn, n, size int, result []byte) error {
	r := bufio.NewReaderSize(c, 16<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	buf := make([]byte, size)
	for i := range n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("bench: raw server, request %d: %w", i, err)
		}
		if _, err := w.Write(result); err != nil {
			return err
		}
		if r.Buffered() < size {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	err := w.Flush()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// rawFirstStanza is the ceiling of a new link: from the dial to the server
// reading msg, over a fresh loopback connection that, with TLS, does what
// our link's TLS does and nothing else: a TLS 1.3 handshake in which each
// side presents the same kind of certificate and checks the other's chain.
// No stream headers, no features, no authentication protocol. The listener
// is up before the clock starts, as the Manager's is.
//
// With rs, the connection resumes the session of the one before it (the
// ceiling of a repeated link, whose resumed handshake has no certificates
// and no signatures); a first call with rs makes the session, and every
// call reads the ticket its connection got after the clock stops, as our
// link reads it with the peer's next stream header.
func rawFirstStanza(e *env, tlsOn bool, msg []byte, rs *rawSessions) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	read := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			read <- err
			return
		}
		defer c.Close()
		if tlsOn {
			c = tls.Server(c, rs.server(e))
		}
		if _, err = io.ReadFull(c, make([]byte, len(msg))); err == nil && rs != nil {
			// The ticket went out with the handshake; this byte is for
			// the client to read it by.
			_, err = c.Write([]byte{'x'})
		}
		read <- err
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if tlsOn {
		c = tls.Client(c, rs.client(e))
	}
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	if err := <-read; err != nil {
		return 0, err
	}
	d := time.Since(start)
	if rs != nil {
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			return 0, err
		}
		if resumed := c.(*tls.Conn).ConnectionState().DidResume; resumed != rs.made {
			return 0, fmt.Errorf("bench: raw connection resumed %v, want %v", resumed, rs.made)
		}
		rs.made = true
	}
	return d, nil
}

// rawSessions is what lets raw connections resume: one server
// configuration for all (so one set of ticket keys) and a client session
// cache. nil means full handshakes, each side with a configuration of its
// own as before.
type rawSessions struct {
	srv   *tls.Config
	cache tls.ClientSessionCache
	made  bool // a session was made: the next connection resumes
}

func (rs *rawSessions) server(e *env) *tls.Config {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{e.leaf.TLS}, MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: e.ca.Pool(),
	}
	if rs == nil {
		return cfg
	}
	if rs.srv == nil {
		rs.srv = cfg
	}
	return rs.srv
}

func (rs *rawSessions) client(e *env) *tls.Config {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{e.leaf.TLS}, MinVersion: tls.VersionTLS13,
		RootCAs: e.ca.Pool(), ServerName: receiverDomain,
	}
	if rs != nil {
		if rs.cache == nil {
			rs.cache = tls.NewLRUClientSessionCache(1)
		}
		cfg.ClientSessionCache = rs.cache
	}
	return cfg
}
