// Package front is a round-robin TCP front on loopback: what a load
// balancer (or the several addresses of one DNS name) is to a cluster.
// Each connection goes to the next backend in turn; a backend that refuses
// the connection is skipped, as a client walking an address list would.
package front

import (
	"io"
	"net"
	"sync"
)

// Front accepts on one loopback address and relays each connection to a
// backend, in turn.
type Front struct {
	ln       net.Listener
	backends []Backend

	mu    sync.Mutex
	next  int
	conns []string // the backend name of each relayed connection, in order
	wg    sync.WaitGroup
	open  map[net.Conn]struct{}
}

// Backend is one node behind the front.
type Backend struct {
	Name string
	Addr string
}

// New starts a front for backends on 127.0.0.1.
func New(backends []Backend) (*Front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Front{ln: ln, backends: backends, open: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Addr is the front's address.
func (f *Front) Addr() *net.TCPAddr { return f.ln.Addr().(*net.TCPAddr) }

// Conns returns the backend each connection went to so far, in order.
func (f *Front) Conns() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.conns...)
}

// Close stops accepting and closes every relayed connection.
func (f *Front) Close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Front) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *Front) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.open[c] = struct{}{}
	} else {
		delete(f.open, c)
	}
}

func (f *Front) relay(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	var b net.Conn
	for range f.backends {
		f.mu.Lock()
		be := f.backends[f.next%len(f.backends)]
		f.next++
		f.mu.Unlock()
		conn, err := net.Dial("tcp", be.Addr)
		if err != nil {
			continue // a dead node: the next one
		}
		f.mu.Lock()
		f.conns = append(f.conns, be.Name)
		f.mu.Unlock()
		b = conn
		break
	}
	if b == nil {
		return
	}
	defer b.Close()
	f.track(c, true)
	f.track(b, true)
	defer f.track(c, false)
	defer f.track(b, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Half-close what can be, so that a </stream:stream> followed by
		// a close reaches the other side as the end of the stream.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
}
