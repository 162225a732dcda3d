package s2stest

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/resolver"
)

// AddPeer tells the stub that a remote domain (the host's) listens on addr.
// The stub connects there to verify the dialback keys the host presents and to
// send the host stanzas; a domain it knows nothing of is not found.
func (s *Server) AddPeer(domainName string, addr netip.AddrPort) {
	d, err := domain.Normalize(domainName)
	if err != nil {
		// Kept as given: it then never matches, and the stub's links to it
		// fail as a domain that does not resolve would.
		d = domainName
	}
	s.mu.Lock()
	s.peers[d] = addr
	s.mu.Unlock()
}

// peerResolver resolves the domains given to AddPeer, and only those: the stub
// never asks DNS.
type peerResolver struct{ s *Server }

// Resolve returns the peer's address.
func (r peerResolver) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	n, err := domain.Normalize(d)
	if err != nil {
		return nil, fmt.Errorf("s2stest: %w: %w", resolver.ErrNotFound, err)
	}
	r.s.mu.Lock()
	a, ok := r.s.peers[n]
	r.s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("s2stest: %w: %s is no peer of the stub (AddPeer)", resolver.ErrNotFound, n)
	}
	return []resolver.Target{{Host: n, Addr: a}}, nil
}
