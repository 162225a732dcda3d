package dnstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Fault is one deliberate misbehaviour, applied to a single query.
type Fault int

const (
	// Drop reads the query and never answers it, so the client times out.
	Drop Fault = iota + 1
	// ServFail answers SERVFAIL, the rcode a recursive resolver gives when
	// it could not reach the authoritative servers.
	ServFail
	// Spoof first sends two replies the client must ignore (one with another
	// message ID, one for another question, both carrying a bogus record),
	// then the real answer. Over TCP it answers normally.
	Spoof
)

// Entry is what the server answers for one (name, type) pair.
// The zero value answers NOERROR with no records.
type Entry struct {
	// RCode is the response code; zero is NOERROR.
	RCode dnsmessage.RCode
	// Answers is the answer section. Resource headers are completed by the
	// helpers A, AAAA, SRV and CNAME.
	Answers []dnsmessage.Resource
	// Truncate makes every UDP answer an empty one with the TC bit set, so
	// the client has to ask again over TCP, which gets Answers.
	Truncate bool
	// Faults are consumed one per query (over either transport), in order;
	// once they are used up the entry answers normally.
	Faults []Fault
	// Delay is waited before each reply is sent.
	Delay time.Duration
}

type key struct {
	name string
	typ  dnsmessage.Type
}

// Server is a DNS server on loopback answering from a table. Its methods are
// safe for concurrent use. Create one with NewServer.
type Server struct {
	udp net.PacketConn
	tcp net.Listener

	mu      sync.Mutex
	entries map[key]*Entry
	names   map[string]bool
	counts  map[key]int
	// queries being answered now, and the most at once (MaxInFlight)
	inFlight, maxInFlight int

	done chan struct{}
	wg   sync.WaitGroup
}

// NewServer listens on addr ("127.0.0.1:0" or "[::1]:0" for a free port) over
// UDP and over TCP on the same port, and starts serving. Close stops it.
func NewServer(addr string) (*Server, error) {
	udp, tcp, err := listenBoth(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		udp:     udp,
		tcp:     tcp,
		entries: make(map[key]*Entry),
		names:   make(map[string]bool),
		counts:  make(map[key]int),
		done:    make(chan struct{}),
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return s, nil
}

// listenBoth finds a port free for both UDP and TCP. With port 0 the kernel
// picks the UDP port, and the TCP one may be taken, so it tries a few times.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnstest: %w", err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnstest: no port free for both UDP and TCP: %w", lastErr)
}

// Addr returns the server's "ip:port", the same for UDP and TCP.
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Set makes the server answer queries for name and typ with e, replacing any
// previous entry. Names are compared case-insensitively, with or without the
// trailing dot.
func (s *Server) Set(name string, typ dnsmessage.Type, e Entry) {
	n := canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Faults = append([]Fault(nil), e.Faults...)
	s.entries[key{n, typ}] = &e
	s.names[n] = true
}

// Count returns how many queries for name and typ the server has received,
// over both transports, including dropped ones.
func (s *Server) Count(name string, typ dnsmessage.Type) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key{canonical(name), typ}]
}

// MaxInFlight returns the most queries the server was answering at once
// (with a Delay, they overlap), for tests of a client's concurrency.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Close stops the server and waits for its goroutines, abandoning delayed
// replies.
func (s *Server) Close() error {
	close(s.done)
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// plan is what to send for one query.
type plan struct {
	fault Fault
	entry Entry
	known bool // the name exists (some entry), so a missing type is NODATA
	found bool // there is an entry for this very type
}

// take records the query and consumes one fault of its entry.
func (s *Server) take(q dnsmessage.Question) plan {
	k := key{canonical(q.Name.String()), q.Type}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[k]++
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	e, ok := s.entries[k]
	if !ok {
		return plan{known: s.names[k.name]}
	}
	p := plan{entry: *e, known: true, found: true}
	if len(e.Faults) > 0 {
		p.fault = e.Faults[0]
		e.Faults = e.Faults[1:]
	}
	return p
}

// answered ends a query that take counted in flight.
func (s *Server) answered() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		query := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for _, reply := range s.replies(query, true) {
				if _, err := s.udp.WriteTo(reply, from); err != nil {
					return
				}
			}
		}()
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	// Unblock the reads below when the server closes.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.done:
			c.Close()
		case <-stop:
		}
	}()
	var size [2]byte
	for {
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		query := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, query); err != nil {
			return
		}
		for _, reply := range s.replies(query, false) {
			framed := binary.BigEndian.AppendUint16(nil, uint16(len(reply)))
			if _, err := c.Write(append(framed, reply...)); err != nil {
				return
			}
		}
	}
}

// replies decides what to send back for one query; nil means silence.
func (s *Server) replies(query []byte, udp bool) [][]byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	pl := s.take(q)
	defer s.answered()
	if pl.entry.Delay > 0 {
		t := time.NewTimer(pl.entry.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return nil
		}
	}

	resp := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID:                 h.ID,
			Response:           true,
			Authoritative:      true,
			RecursionDesired:   h.RecursionDesired,
			RecursionAvailable: true,
		},
		Questions: []dnsmessage.Question{q},
	}
	switch {
	case pl.fault == Drop:
		return nil
	case pl.fault == ServFail:
		resp.Header.RCode = dnsmessage.RCodeServerFailure
	case !pl.known:
		resp.Header.RCode = dnsmessage.RCodeNameError
	case !pl.found:
		// NODATA: the name exists, the type does not.
	case pl.entry.Truncate && udp:
		resp.Header.Truncated = true
		resp.Header.RCode = pl.entry.RCode
	default:
		resp.Header.RCode = pl.entry.RCode
		resp.Answers = pl.entry.Answers
	}
	real, err := resp.Pack()
	if err != nil {
		return nil
	}
	if pl.fault != Spoof || !udp {
		return [][]byte{real}
	}

	bogus := []dnsmessage.Resource{A(q.Name.String(), "203.0.113.66")}
	otherID := resp
	otherID.Header.ID = h.ID ^ 0x5a5a
	otherID.Header.RCode = dnsmessage.RCodeSuccess
	otherID.Answers = bogus
	otherQ := otherID
	otherQ.Header.ID = h.ID
	otherQ.Questions = []dnsmessage.Question{{
		Name:  dnsmessage.MustNewName("spoofed.invalid."),
		Type:  q.Type,
		Class: q.Class,
	}}
	var out [][]byte
	for _, m := range []dnsmessage.Message{otherID, otherQ} {
		b, err := m.Pack()
		if err != nil {
			return nil
		}
		out = append(out, b)
	}
	return append(out, real)
}
