package dialback

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// RefreshTimeout bounds the read of the shared store that a [Keyring] makes
// when a key matches none of the secrets it knows.
const RefreshTimeout = 5 * time.Second

// refreshInterval is the least time between the starts of two reads of the
// store, so that a peer sending made-up keys as fast as it can costs the
// store ten reads a second per node, not one per key.
const refreshInterval = 100 * time.Millisecond

// Keyring is a [KeySource] and [KeyChecker] over a [Generation] of secrets
// that can change while it is used: keys are made with the current secret,
// and checked against the current one and, during its grace period, the
// previous one.
//
// A Keyring made by [Follow] keeps up with a [SecretSource]. Its nodes learn
// of a rotation at slightly different times, so a node may be asked to
// verify a key made with a secret it has not seen yet; rather than fail
// such a key, the Keyring then reads the newest generation from the store
// once and checks again. Reads caused by bad keys are shared: however many
// keys fail at once, at most one read is in flight and reads start at
// most ten times a second; a check waits for the next read that begins
// after it did (which is sure to see every generation stored before that
// check began).
//
// Give it to s2s.Config.Keys. A Keyring is safe for concurrent use.
type Keyring struct {
	gen atomic.Pointer[Generation]
	src SecretSource     // nil for a static Keyring
	now func() time.Time // time.Now; replaced by tests

	mu        sync.Mutex
	epoch     atomic.Uint64 // refreshes started so far
	inflight  *refresh      // the read in progress, if any
	lastStart time.Time     // when the last read started
}

// refresh is one read of the store; done closes when it finished.
type refresh struct {
	epoch uint64
	done  chan struct{}
}

// NewKeyring returns a Keyring holding g, which changes only through Set.
func NewKeyring(g Generation) *Keyring {
	k := &Keyring{now: time.Now}
	k.gen.Store(&g)
	return k
}

// Follow returns a Keyring that holds src's newest generation and follows
// it until ctx ends: a goroutine watches src (and watches again after a
// failure, reading the newest generation first, once a second at most), and
// a key no known secret accepts makes it read src again (see Keyring).
// It fails when the first read of src fails.
func Follow(ctx context.Context, src SecretSource) (*Keyring, error) {
	g, err := src.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	k := NewKeyring(g)
	k.src = src
	go k.follow(ctx)
	return k, nil
}

func (k *Keyring) follow(ctx context.Context) {
	for {
		// A watch that fails leaves the store unreachable for now; a key
		// that fails to check reads it anyway, so there is nothing to do
		// with the error but watch again.
		k.src.Watch(ctx, k.Set)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		// Whatever was stored while the watch was down.
		rctx, cancel := context.WithTimeout(ctx, RefreshTimeout)
		if g, err := k.src.Secrets(rctx); err == nil {
			k.Set(g)
		}
		cancel()
	}
}

// Generation returns the generation the Keyring holds.
func (k *Keyring) Generation() Generation { return *k.gen.Load() }

// Set replaces the generation, unless g is older than the one held (a
// watch and a refresh may deliver generations out of order).
func (k *Keyring) Set(g Generation) {
	for {
		old := k.gen.Load()
		if g.Version < old.Version {
			return
		}
		if k.gen.CompareAndSwap(old, &g) {
			return
		}
	}
}

// Key implements [KeySource] with the current secret.
func (k *Keyring) Key(receiving, originating, streamID string) (string, error) {
	return k.gen.Load().Current.Key(receiving, originating, streamID)
}

// CheckKey implements [KeyChecker]: the current secret, then the retired
// ones (Previous, Older) while their grace lasts, then (for a Keyring made by Follow) the
// newest generation of the store, if it is a newer one.
func (k *Keyring) CheckKey(key, receiving, originating, streamID string) (bool, error) {
	if key == "" {
		return false, nil
	}
	e0 := k.epoch.Load()
	g := k.gen.Load()
	ok, err := k.check(g, key, receiving, originating, streamID)
	if ok || err != nil || k.src == nil {
		return ok, err
	}
	k.refreshAfter(e0)
	if g2 := k.gen.Load(); g2.Version != g.Version {
		return k.check(g2, key, receiving, originating, streamID)
	}
	return false, nil
}

func (k *Keyring) check(g *Generation, key, receiving, originating, streamID string) (bool, error) {
	ok, err := checkSecret(g.Current, key, receiving, originating, streamID)
	if ok || err != nil {
		return ok, err
	}
	now := k.now()
	if g.Previous != "" && now.Before(g.PreviousUntil) {
		if ok, err := checkSecret(g.Previous, key, receiving, originating, streamID); ok || err != nil {
			return ok, err
		}
	}
	for _, r := range g.Older {
		if now.Before(r.Until) {
			if ok, err := checkSecret(r.Secret, key, receiving, originating, streamID); ok || err != nil {
				return ok, err
			}
		}
	}
	return false, nil
}

// refreshAfter returns once a read of the store that started after epoch
// e0 has finished, starting one if none has.
func (k *Keyring) refreshAfter(e0 uint64) {
	for {
		k.mu.Lock()
		if r := k.inflight; r != nil {
			k.mu.Unlock()
			<-r.done
			if r.epoch > e0 {
				return
			}
			continue
		}
		if k.epoch.Load() > e0 {
			// A read that began after this check has already finished.
			k.mu.Unlock()
			return
		}
		r := &refresh{epoch: k.epoch.Add(1), done: make(chan struct{})}
		k.inflight = r
		wait := time.Until(k.lastStart.Add(refreshInterval))
		k.mu.Unlock()
		if wait > 0 {
			// Holding the in-flight slot, so that the checks arriving
			// meanwhile share this read.
			time.Sleep(wait)
		}
		k.mu.Lock()
		k.lastStart = time.Now()
		k.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), RefreshTimeout)
		if g, err := k.src.Secrets(ctx); err == nil {
			k.Set(g)
		}
		cancel()
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		close(r.done)
		return
	}
}
