package s2stest

import (
	"context"
	"net"
	"sync"
)

// conn is a connection of the stub, incoming or outgoing, kept in the stub's
// set so that Drop and Close can reach it whoever holds it.
type conn struct {
	net.Conn
	s    *Server
	held bool // stalled: never handed to the Manager; set before tracking
	once sync.Once
}

// track adds c to the stub's set; it returns nil once the stub is closed.
func (s *Server) track(c net.Conn, held bool) *conn {
	tc := &conn{Conn: c, s: s, held: held}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.conns[tc] = struct{}{}
	return tc
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// reset closes the connection with a TCP RST, so that the peer learns of it
// at once and without an orderly end, as when a server crashes.
func (c *conn) reset() {
	if tcp, ok := c.Conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}

// dial is the stub Manager's dialer: it tracks what it opens.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := s.track(c, false)
	if tc == nil {
		c.Close()
		return nil, net.ErrClosed
	}
	return tc, nil
}

// acceptLoop accepts on the stub's socket: it holds connections while the stub
// stalls and hands the others to the Manager through s.ln.
func (s *Server) acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			s.ln.Close()
			return
		}
		tc := s.track(c, s.stall.Load())
		if tc == nil {
			c.Close()
			continue
		}
		if tc.held {
			continue
		}
		if !s.ln.push(tc) {
			tc.Close()
			return
		}
	}
}

// handoff is the listener the stub's Manager serves: it yields the
// connections acceptLoop decided to serve. Closing it closes the real socket.
type handoff struct {
	real  net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(ln net.Listener) *handoff {
	return &handoff{real: ln, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push waits until the Manager takes c; false when the listener closed.
func (h *handoff) push(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// Accept returns the next connection to serve.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener and closes the real socket.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return h.real.Close()
}

// Addr returns the real socket's address.
func (h *handoff) Addr() net.Addr { return h.real.Addr() }
