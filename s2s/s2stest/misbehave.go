package s2stest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/xmpp-s2s/federation/policy"
)

// Dialback is how the stub plays Server Dialback (XEP-0220).
type Dialback int32

// The ways the stub plays dialback. The zero value plays it correctly.
const (
	// DialbackNormal authenticates honestly and verifies the host's keys
	// with the host.
	DialbackNormal Dialback = iota
	// DialbackDeny refuses the host, as a server whose policy denies it:
	// the host's <db:result/> requests are answered with a policy-violation
	// dialback error, and the stub's own stanzas to the host are bounced
	// with policy-violation without a connection being opened.
	DialbackDeny
	// DialbackWrongKey makes the stub present keys it will not vouch for:
	// when the host asks it (as the authoritative server) about the key of
	// the stub's stream, the answer is invalid, so the host refuses the
	// stream and the stub's stanzas bounce. The host's own links to the
	// stub are not affected: their keys are verified with the host.
	DialbackWrongKey
)

// String returns the mode's name.
func (d Dialback) String() string {
	switch d {
	case DialbackNormal:
		return "normal"
	case DialbackDeny:
		return "deny"
	case DialbackWrongKey:
		return "wrong-key"
	}
	return "unknown"
}

// SetDialback changes how the stub plays dialback from now on. Links already
// authenticated stay up; use Drop to make the host authenticate again.
func (s *Server) SetDialback(d Dialback) { s.dialback.Store(int32(d)) }

// SetStall makes the stub accept each new TCP connection and then never read
// or write a byte, while on is true: the host's connection attempt hangs until
// its outgoing.connection_timeout. Stalled connections stay open until Drop or
// Close; connections accepted before are not affected.
func (s *Server) SetStall(on bool) { s.stall.Store(on) }

// Drop closes every connection of the stub at once, incoming and outgoing,
// with a TCP reset and no </stream:stream>, as a crashed server would. The
// host sees its links fail; stanzas that were on the wire are lost and not
// recorded, even those the stub had read but not yet handled.
func (s *Server) Drop() {
	s.mu.Lock()
	s.dropAt = time.Now()
	s.dropAfter = 0
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.reset()
	}
}

// DropAfter arms a Drop that happens as soon as n more stanzas have arrived
// from the host: the n-th is recorded, then every connection is dropped. The
// drop happens once; n <= 0 disarms it.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	s.dropAfter = max(n, 0)
	s.mu.Unlock()
}

// keySource makes the stub's dialback keys: those of its shared secret, or
// random ones under DialbackWrongKey. The same source answers the host's
// <db:verify/>, so a random key never matches the one it is compared with.
type keySource struct{ s *Server }

// Key returns the dialback key for the inputs.
func (k keySource) Key(receiving, originating, streamID string) (string, error) {
	if Dialback(k.s.dialback.Load()) == DialbackWrongKey {
		var b [32]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:]), nil
	}
	return k.s.keys.Key(receiving, originating, streamID)
}

// decide wraps the configured policy: DialbackDeny refuses every host, in
// both directions, as the policy of a server that does not want the host.
func (s *Server) decide(base policy.Policy) func(context.Context, string) policy.Decision {
	return func(ctx context.Context, host string) policy.Decision {
		if Dialback(s.dialback.Load()) == DialbackDeny {
			return policy.Decision{Host: host, Action: policy.Deny, Rule: policy.HostRule}
		}
		return base.Decide(ctx, host)
	}
}
