package s2s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
)

// A <db:result> makes us connect to the authoritative server of the domain
// it names, a server the peer chooses. Without bounds one cheap element from
// anyone becomes a connection (and a TLS handshake) from us to a third
// party: a reflector, and a way to use up our file descriptors. The bounds,
// from the narrowest:
//
//   - per stream: a request repeated while its verification runs waits for
//     that verification (inStream.pending), and every <db:result> counts
//     against MaxDialbackPerStream;
//   - per peer address: a pair whose verification just failed is answered
//     from memory for DialbackFailureTTL, so a peer cannot make us ask again
//     by reconnecting (failures are kept per address, so that a third party
//     cannot make us refuse the real server of a domain);
//   - per remote domain and in all: at most MaxVerificationsPerDomain and
//     MaxVerifications verifications in flight; more are answered with a
//     resource-constraint dialback error (type wait), and the peer may try
//     again later.

// Defaults of the verification bounds in Config.
const (
	// DefaultMaxVerifications is far above the verifications a server
	// needs at once (one per new incoming stream, finished in a round
	// trip), and far below a file descriptor limit.
	DefaultMaxVerifications = 1000
	// DefaultMaxVerificationsPerDomain lets the nodes of a remote cluster
	// authenticate several streams at once.
	DefaultMaxVerificationsPerDomain = 8
	// DefaultDialbackFailureTTL is short enough that a peer that fixed its
	// key or its DNS is not kept waiting, long enough to make repeating a
	// failed request pointless.
	DefaultDialbackFailureTTL = 10 * time.Second
)

// maxFailures bounds the failures remembered; when full, expired ones are
// dropped, and if none has expired the new one is not remembered.
const maxFailures = 10000

// maxDialbackKey bounds the key of a <db:result>, which a verification holds
// until the authoritative server answers. XEP-0185 keys have 64 bytes.
const maxDialbackKey = 1024

// verifications counts the verifications in flight and remembers recent
// failures. The zero value is ready; it is safe for concurrent use.
type verifications struct {
	mu       sync.Mutex
	total    int
	byDomain map[string]int
	failed   map[failedKey]failure
}

// failedKey is a pair as asked from one address (an IPv6 /64).
type failedKey struct {
	src netip.Addr
	p   pair
}

type failure struct {
	until time.Time
	typ   dialback.Type
	err   error
}

// acquire counts a verification toward remote, false when over a bound
// (limit < 0: no bound).
func (v *verifications) acquire(remote string, total, perDomain int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if total >= 0 && v.total >= total || perDomain >= 0 && v.byDomain[remote] >= perDomain {
		return false
	}
	if v.byDomain == nil {
		v.byDomain = make(map[string]int)
	}
	v.total++
	v.byDomain[remote]++
	return true
}

// release ends a verification that acquire counted.
func (v *verifications) release(remote string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.total--
	if v.byDomain[remote] <= 1 {
		delete(v.byDomain, remote)
	} else {
		v.byDomain[remote]--
	}
}

// recall returns the failure remembered for k, if it has not expired.
func (v *verifications) recall(k failedKey, now time.Time) (failure, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.failed[k]
	if !ok {
		return failure{}, false
	}
	if !now.Before(f.until) {
		delete(v.failed, k)
		return failure{}, false
	}
	return f, true
}

// remember keeps a failure for k until f.until.
func (v *verifications) remember(k failedKey, f failure, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failed == nil {
		v.failed = make(map[failedKey]failure)
	}
	if _, ok := v.failed[k]; !ok && len(v.failed) >= maxFailures {
		for k, f := range v.failed {
			if !now.Before(f.until) {
				delete(v.failed, k)
			}
		}
		if len(v.failed) >= maxFailures {
			return
		}
	}
	v.failed[k] = f
}

// errBusy answers a request over MaxVerifications or
// MaxVerificationsPerDomain.
var errBusy = stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}

// bounded runs verify for p on behalf of a stream from src, within the
// bounds above.
func (m *Manager) bounded(ctx context.Context, src netip.Addr, p pair, verify func(context.Context) (dialback.Type, error)) (dialback.Type, error) {
	k := failedKey{src, p}
	if f, ok := m.verif.recall(k, m.clock.Now()); ok {
		m.log.Debug("s2s: dialback request answered from a recent failure", "local", p.local, "remote", p.remote, "err", f.err)
		if f.err != nil {
			return f.typ, fmt.Errorf("%w (the same request failed less than %v ago)", f.err, m.cfg.DialbackFailureTTL)
		}
		return f.typ, nil
	}
	if !m.verif.acquire(p.remote, m.cfg.MaxVerifications, m.cfg.MaxVerificationsPerDomain) {
		m.log.Warn("s2s: too many dialback verifications in flight; refused one", "local", p.local, "remote", p.remote)
		return "", fmt.Errorf("verifying %s's key: %w", p.remote, errBusy)
	}
	typ, err := verify(ctx)
	m.verif.release(p.remote)
	if ttl := m.cfg.DialbackFailureTTL; ttl > 0 && failed(typ, err) {
		now := m.clock.Now()
		m.verif.remember(k, failure{until: now.Add(ttl), typ: typ, err: err}, now)
	}
	return typ, err
}

// failed reports a verification whose outcome is worth remembering: the
// key refused, or the authoritative server unreachable, unknown or slow.
// A stream that ended under the verification says nothing about the pair.
func failed(typ dialback.Type, err error) bool {
	if err == nil {
		return typ != dialback.Valid
	}
	return !errors.Is(err, context.Canceled)
}
