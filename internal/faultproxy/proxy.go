// Package faultproxy is a TCP proxy for tests that breaks the connections
// it carries on command, the ways real networks break s2s links: it goes
// silent while both sockets stay open (a half-open link: the peer's host
// vanished or a NAT forgot the mapping, and writes still succeed), it
// resets, or it drops bytes in the middle of what it forwards.
//
// Faults hit the connections open when they are injected; connections
// accepted afterwards are forwarded faithfully, so a test can watch the
// endpoints notice the fault and recover through the same proxy. Only
// loopback is used.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Direction is one way through the proxy.
type Direction uint8

// The two directions of a proxied connection.
const (
	Up   Direction = iota // from the client that connected to the proxy to the target
	Down                  // from the target back to the client
)

// Proxy forwards every connection made to its listener to one target
// address. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted atomic.Int64
	read     [2]atomic.Int64 // bytes read, per direction
	sent     [2]atomic.Int64 // bytes forwarded, per direction
}

// pair is one proxied connection: the client's side and the target's.
type pair struct {
	client, target net.Conn
	silent         atomic.Bool
	ended          atomic.Int32 // directions that stopped forwarding
	// drop[d] is how many bytes of direction d to discard, once skip[d]
	// more were forwarded.
	dmu  sync.Mutex
	skip [2]int
	drop [2]int
}

// New listens on a loopback port and forwards to target ("host:port").
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address.
func (p *Proxy) Addr() netip.AddrPort { return p.ln.Addr().(*net.TCPAddr).AddrPort() }

// Accepted counts the connections accepted so far.
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

// Read is how many bytes of direction d the proxy has read so far.
func (p *Proxy) Read(d Direction) int64 { return p.read[d].Load() }

// Forwarded is how many bytes of direction d the proxy passed on.
func (p *Proxy) Forwarded(d Direction) int64 { return p.sent[d].Load() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		t, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, target: t}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			t.Close()
			return
		}
		p.conns[pr] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.forward(pr, Up)
		go p.forward(pr, Down)
	}
}

// forward copies one direction of pr until either side ends.
func (p *Proxy) forward(pr *pair, d Direction) {
	defer p.wg.Done()
	src, dst := pr.client, pr.target
	if d == Down {
		src, dst = pr.target, pr.client
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.silent.Load() {
			out := pr.filter(d, buf[:n])
			if werr := writeAll(dst, out); werr != nil {
				err = werr
			} else {
				p.sent[d].Add(int64(len(out)))
			}
		}
		// Counted after forwarding, so that a test that sees the count
		// knows the bytes' fate is decided.
		p.read[d].Add(int64(n))
		if err != nil {
			if errors.Is(err, io.EOF) && !pr.silent.Load() && pr.ended.Add(1) < 2 {
				// A clean half-close travels on; the other direction
				// may still have something to say.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					return
				}
			}
			pr.ended.Store(2)
			pr.client.Close()
			pr.target.Close()
			p.mu.Lock()
			delete(p.conns, pr)
			p.mu.Unlock()
			return
		}
	}
}

// filter applies a pending Drop to b: it returns the bytes to forward.
func (pr *pair) filter(d Direction, b []byte) []byte {
	pr.dmu.Lock()
	defer pr.dmu.Unlock()
	if pr.drop[d] == 0 {
		return b
	}
	if pr.skip[d] >= len(b) {
		pr.skip[d] -= len(b)
		return b
	}
	k := pr.skip[d]
	pr.skip[d] = 0
	n := min(pr.drop[d], len(b)-k)
	pr.drop[d] -= n
	out := append(b[:k:k], b[k+n:]...)
	return out
}

func writeAll(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n, err := w.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (p *Proxy) each(f func(*pair)) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.conns {
		f(pr)
	}
	return len(p.conns)
}

// Silence makes the open connections half-open: from now on the proxy
// reads what either side sends and forwards nothing, and keeps every
// socket open, so writes keep succeeding and nothing ever arrives, as
// when the peer's host is gone. It returns how many connections it hit.
func (p *Proxy) Silence() int {
	return p.each(func(pr *pair) { pr.silent.Store(true) })
}

// Reset aborts the open connections on both sides with a TCP reset. It
// returns how many it hit.
func (p *Proxy) Reset() int {
	return p.each(func(pr *pair) {
		for _, c := range []net.Conn{pr.client, pr.target} {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	})
}

// Drop makes each open connection discard n bytes of direction d after
// forwarding skip more: the receiving side gets a stream with a hole in
// the middle of whatever was crossing. It returns how many connections it
// hit.
func (p *Proxy) Drop(d Direction, skip, n int) int {
	return p.each(func(pr *pair) {
		pr.dmu.Lock()
		pr.skip[d], pr.drop[d] = skip, n
		pr.dmu.Unlock()
	})
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for pr := range p.conns {
		pr.client.Close()
		pr.target.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}
