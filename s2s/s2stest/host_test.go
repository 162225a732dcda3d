package s2stest

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// The host is the Manager under test in these tests: a real s2s.Manager
// serving host.example, wired to a stub the way the package doc tells hosts
// to wire theirs.
const (
	hostDomain = "host.example"
	stubDomain = "remote.example"
)

// wait bounds every wait of these tests: long enough for a loaded machine,
// short enough to fail a hung test. It is never what a test asserts.
const wait = 20 * time.Second

type host struct {
	t         *testing.T
	m         *s2s.Manager
	delivered chan s2s.Stanza
	bounced   chan s2s.Bounce
	events    chan s2s.Event
	pending   []s2s.Event // read from events, not yet asked for
}

// newPair starts a stub with opts and a host wired to it; mode is the host's
// use_starttls, and cfg, when set, changes the host's Config last.
func newPair(t *testing.T, mode string, cfg func(*s2s.Config), opts ...Option) (*host, *Server) {
	t.Helper()
	ln := listen(t)
	stub := NewServer(t, stubDomain, append([]Option{WithPeer(hostDomain, ln.Addr().(*net.TCPAddr).AddrPort())}, opts...)...)
	return newHost(t, ln, stub, mode, cfg), stub
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newHost starts the host on ln, wired to stub.
func newHost(t *testing.T, ln net.Listener, stub *Server, mode string, cfg func(*s2s.Config)) *host {
	t.Helper()
	h := &host{
		t:         t,
		delivered: make(chan s2s.Stanza, 100),
		bounced:   make(chan s2s.Bounce, 100),
		events:    make(chan s2s.Event, 1000),
	}
	s := config.Default()
	s.UseStartTLS = mode
	s.Address = append(s.Address, stub.Address())
	c := s2s.Config{
		S2S:         s,
		IsLocal:     func(d string) bool { return d == hostDomain },
		Deliver:     func(st s2s.Stanza) { h.delivered <- st },
		Bounce:      func(b s2s.Bounce) { h.bounced <- b },
		Logger:      discard,
		RootCAs:     stub.RootCAs(),
		Certificate: starttls.StaticCert(stub.IssueCertificate(hostDomain)),
		Observer: func(e s2s.Event) {
			if e.Kind == s2s.LinkUp || e.Kind == s2s.LinkDown || e.Kind == s2s.AuthFailed || e.Kind == s2s.LinkFailed {
				h.events <- e
			}
		},
	}
	if cfg != nil {
		cfg(&c)
	}
	m, err := s2s.New(c)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	go m.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("host Shutdown: %v", err)
		}
	})
	return h
}

func (h *host) send(raw string) {
	h.t.Helper()
	if err := h.m.Send(context.Background(), []byte(raw)); err != nil {
		h.t.Fatalf("host Send(%s): %v", raw, err)
	}
}

func (h *host) nextDelivered() s2s.Stanza {
	h.t.Helper()
	select {
	case st := <-h.delivered:
		return st
	case b := <-h.bounced:
		h.t.Fatalf("host bounced %s instead of receiving: %s: %s", b.Stanza.ID, b.Condition, b.Text)
	case <-time.After(wait):
		h.t.Fatal("host received nothing")
	}
	return s2s.Stanza{}
}

func (h *host) nextBounce() s2s.Bounce {
	h.t.Helper()
	select {
	case b := <-h.bounced:
		return b
	case <-time.After(wait):
		h.t.Fatal("host bounced nothing")
	}
	return s2s.Bounce{}
}

// nextEvent returns the host's first event of kind in direction dir that it
// has not returned yet; events of other kinds stay for later calls.
func (h *host) nextEvent(kind s2s.EventKind, dir s2s.Direction) s2s.Event {
	h.t.Helper()
	match := func(e s2s.Event) bool { return e.Kind == kind && e.Link.Direction == dir }
	if i := slices.IndexFunc(h.pending, match); i >= 0 {
		e := h.pending[i]
		h.pending = slices.Delete(h.pending, i, i+1)
		return e
	}
	deadline := time.After(wait)
	for {
		select {
		case e := <-h.events:
			if match(e) {
				return e
			}
			h.pending = append(h.pending, e)
		case <-deadline:
			h.t.Fatalf("host saw no %s %s event", dir, kind)
			return s2s.Event{}
		}
	}
}

// noBounce fails when the host bounced something so far. It is checked once
// the host has seen the event after which a bounce would have come.
func (h *host) noBounce() {
	h.t.Helper()
	select {
	case b := <-h.bounced:
		h.t.Fatalf("host bounced %s: %s: %s", b.Stanza.ID, b.Condition, b.Text)
	default:
	}
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func next(t *testing.T, s *Server) s2s.Stanza {
	t.Helper()
	st, err := s.Next(ctxWait(t))
	if err != nil {
		t.Fatalf("stub received nothing: %v", err)
	}
	return st
}

func nextBounce(t *testing.T, s *Server) s2s.Bounce {
	t.Helper()
	b, err := s.NextBounce(ctxWait(t))
	if err != nil {
		t.Fatalf("stub bounced nothing: %v", err)
	}
	return b
}

func nextEvent(t *testing.T, s *Server, kind s2s.EventKind, dir s2s.Direction) s2s.Event {
	t.Helper()
	ctx := ctxWait(t)
	for {
		e, err := s.NextEvent(ctx)
		if err != nil {
			t.Fatalf("stub saw no %s %s event: %v", dir, kind, err)
		}
		if e.Kind == kind && e.Link.Direction == dir {
			return e
		}
	}
}

func stubSend(t *testing.T, s *Server, raw string) {
	t.Helper()
	if err := s.Send(context.Background(), []byte(raw)); err != nil {
		t.Fatalf("stub Send(%s): %v", raw, err)
	}
}

// waitLinks reads the stub's events until it has seen one of kind in each of
// dirs; the events it reads past are gone.
func waitLinks(t *testing.T, s *Server, kind s2s.EventKind, dirs ...s2s.Direction) {
	t.Helper()
	ctx := ctxWait(t)
	seen := map[s2s.Direction]bool{}
	for len(seen) < len(dirs) {
		e, err := s.NextEvent(ctx)
		if err != nil {
			t.Fatalf("stub saw %s for %v only, want %v", kind, seen, dirs)
		}
		if e.Kind == kind && slices.Contains(dirs, e.Link.Direction) {
			seen[e.Link.Direction] = true
		}
	}
}
