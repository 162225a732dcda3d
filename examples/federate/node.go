package main

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// node is one demo domain: a Manager serving it on its own loopback listener,
// with what it receives and bounces on channels for the demo to wait on.
type node struct {
	name string
	more string // the second domain the server hosts; "" for none
	ln   net.Listener
	m    *s2s.Manager

	delivered chan s2s.Stanza
	bounced   chan s2s.Bounce
	served    chan error // Serve's result
}

// listen reserves the node's port first, so that its peer can be told the
// address before either Manager starts.
func listen(name string) (*node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &node{
		name:      name,
		ln:        ln,
		delivered: make(chan s2s.Stanza, 16),
		bounced:   make(chan s2s.Bounce, 16),
		served:    make(chan error, 1),
	}, nil
}

func (n *node) addr() netip.AddrPort { return n.ln.Addr().(*net.TCPAddr).AddrPort() }

// domains are the domains the node hosts, its name first.
func (n *node) domains() []string {
	if n.more == "" {
		return []string{n.name}
	}
	return []string{n.name, n.more}
}

// nodeConfig is what start needs besides the node itself.
type nodeConfig struct {
	s2s   config.S2S
	peer  *node
	roots *x509.CertPool // nil: the system roots
	print *printer
	log   *slog.Logger

	dialbackOnly bool // -dialback: no SASL EXTERNAL
}

// start creates the node's Manager and serves its listener. The peer is
// reached through an address override: the demo's domains exist nowhere in
// DNS.
func (n *node) start(c nodeConfig) error {
	opts := c.s2s.Clone()
	peerAddr := c.peer.addr()
	addrs := opts.Address[:0]
	for _, a := range opts.Address {
		if a.Host != c.peer.name && a.Host != c.peer.more {
			addrs = append(addrs, a)
		}
	}
	for _, d := range c.peer.domains() {
		addrs = append(addrs, config.Address{Host: d, IP: peerAddr.Addr(), Port: int(peerAddr.Port())})
	}
	opts.Address = addrs

	name, more := n.name, n.more
	m, err := s2s.New(s2s.Config{
		S2S:      opts,
		IsLocal:  func(d string) bool { return d == name || (more != "" && d == more) },
		Deliver:  func(s s2s.Stanza) { offer(n.delivered, s) },
		Bounce:   func(b s2s.Bounce) { offer(n.bounced, b) },
		Observer: c.print.observe,
		Logger:   c.log.With("domain", name),
		RootCAs:  c.roots,

		DisableSASLExternal: c.dialbackOnly,
	})
	if err != nil {
		n.ln.Close()
		return err
	}
	n.m = m
	go func() { n.served <- m.Serve(n.ln) }()
	return nil
}

// stop shuts the Manager down, letting queues drain until ctx ends, and
// waits for Serve to return.
func (n *node) stop(ctx context.Context) error {
	if n.m == nil {
		return n.ln.Close()
	}
	err := n.m.Shutdown(ctx)
	if serr := <-n.served; !errors.Is(serr, s2s.ErrClosed) && err == nil {
		err = serr
	}
	return err
}

// offer hands v to the demo without ever blocking the Manager's goroutine
// that calls back: the channels hold more than the demo sends, and anything
// beyond that is of no interest once the demo stopped reading.
func offer[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}
