package main

import (
	"errors"
	"net"
	"sync/atomic"
)

// errReadLimit ends a client connection that sent more than a stanza's
// worth of bytes without completing one.
var errReadLimit = errors.New("server: too many bytes without a complete stanza")

// readSlack is what the connection may read beyond max_stanza_size before a
// stanza completes: TLS records (16 KiB) and the XML decoder's read-ahead
// (4 KiB) are read whole, and the bytes of the stream around the stanza
// count too.
const readSlack = 64 << 10

// limitConn bounds the bytes read from a client between two complete
// stanzas. ReadStanza's bound alone applies only once mellium's decoder has
// handed a token over, and the decoder holds a whole text token in memory
// first; counting at the connection bounds that memory too. The count is
// of bytes on the wire, TLS included, which is close enough for a bound.
type limitConn struct {
	net.Conn
	max  int64 // 0: no bound
	read atomic.Int64
}

func (c *limitConn) Read(p []byte) (int, error) {
	if c.max > 0 && c.read.Load() > c.max {
		return 0, errReadLimit
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// reset starts a new count: a stanza was completed.
func (c *limitConn) reset() { c.read.Store(0) }

// newLimitConn bounds conn for stanzas of at most maxStanza bytes (0: no
// bound).
func newLimitConn(conn net.Conn, maxStanza int) *limitConn {
	c := &limitConn{Conn: conn}
	if maxStanza > 0 {
		c.max = int64(maxStanza) + readSlack
	}
	return c
}
