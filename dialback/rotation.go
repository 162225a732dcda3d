package dialback

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"
)

// Generation is the set of dialback secrets a cluster uses at one time.
// New keys are made with Current; a key made with Previous is still
// accepted until PreviousUntil, and one made with an Older secret until its
// own Until, so that a verification in flight during a rotation (a key
// handed out just before it, checked by a node just after it) does not
// fail, however many rotations follow each other meanwhile.
//
// Like [Secret], a Generation never prints its secrets: its fields are
// Secrets, and its own String says only its version.
type Generation struct {
	// Version grows by one with each rotation; the first generation is 1.
	// A [Keyring] never goes back to a lower version.
	Version int64
	// Current makes new keys and verifies keys.
	Current Secret
	// Previous, when not empty, still verifies keys until PreviousUntil.
	Previous      Secret
	PreviousUntil time.Time
	// Older are the secrets retired before Previous whose grace had not
	// ended when this generation was made, newest first; each still
	// verifies keys until its Until. Next keeps at most MaxRetired
	// secrets besides Current (Previous included).
	Older []Retired
}

// Retired is a secret that makes no more keys but still verifies them
// until Until.
type Retired struct {
	Secret Secret
	Until  time.Time
}

// MaxRetired bounds the secrets a Generation keeps besides Current: a store
// rotated more often than that within one grace period drops the oldest,
// so that the set a node checks every key against stays small.
const MaxRetired = 8

// String describes the generation without its secrets.
func (g Generation) String() string {
	if g.Previous == "" {
		return fmt.Sprintf("dialback secrets v%d", g.Version)
	}
	older := ""
	if len(g.Older) > 0 {
		older = fmt.Sprintf(", %d older", len(g.Older))
	}
	return fmt.Sprintf("dialback secrets v%d (previous accepted until %s%s)", g.Version, g.PreviousUntil.UTC().Format(time.RFC3339), older)
}

// NewSecret returns a random secret of 32 hex digits (16 bytes from
// crypto/rand), for a store that creates or rotates the cluster's secret.
func NewSecret() Secret {
	var b [16]byte
	rand.Read(b[:])
	return Secret(hex.EncodeToString(b[:]))
}

// FirstGeneration is the generation a store creates when it holds none.
func FirstGeneration(s Secret) Generation {
	return Generation{Version: 1, Current: s}
}

// Next is the generation that follows g when s becomes the current secret
// at now: g's current secret stays accepted for grace, and g's earlier
// secrets until their own grace ends (at most MaxRetired in all, the
// newest kept). Stores use it inside the transaction that replaces g, so
// that every store rotates alike.
//
// A grace of 0 or less accepts nothing but s from now on, earlier secrets
// included: the rotation after a secret leaked.
func (g Generation) Next(s Secret, grace time.Duration, now time.Time) Generation {
	n := Generation{Version: g.Version + 1, Current: s}
	if grace <= 0 {
		return n
	}
	n.Previous, n.PreviousUntil = g.Current, now.Add(grace)
	older := make([]Retired, 0, len(g.Older)+1)
	if g.Previous != "" {
		older = append(older, Retired{g.Previous, g.PreviousUntil})
	}
	older = append(older, g.Older...)
	for _, r := range older {
		if len(n.Older) == MaxRetired-1 {
			break
		}
		if now.Before(r.Until) {
			n.Older = append(n.Older, r)
		}
	}
	return n
}

// SecretSource is a cluster's shared store of dialback secrets: the
// interface a host implements on its distributed store (etcd, a database)
// so that every node makes and accepts the same keys. The etcdcluster
// module of this repository implements it on etcd.
//
// Implementations must be safe for concurrent use and must not put secret
// material in their errors.
type SecretSource interface {
	// Secrets returns the newest generation. When the store holds none
	// yet, it creates FirstGeneration(NewSecret()) exactly once for the
	// whole cluster (a compare-and-swap: of nodes starting together, one
	// creates it and the others read it).
	Secrets(ctx context.Context) (Generation, error)

	// Watch calls f with the newest generation, then with each one
	// stored after it, in order, until ctx ends (it then returns ctx's
	// error) or the watch fails (it returns why), so that no rotation
	// falls between a read and the watch. f must not block for long.
	Watch(ctx context.Context, f func(Generation)) error
}

// KeyChecker is implemented by a [KeySource] that accepts more keys than the
// one its Key method makes now, such as a [Keyring] during a rotation.
// [Check] uses it when present.
type KeyChecker interface {
	// CheckKey reports whether key is one the source made (or accepts) for
	// the inputs. It compares in constant time, and may block briefly to
	// refresh from a shared store.
	CheckKey(key, receiving, originating, streamID string) (bool, error)
}

// checkSecret compares key with the key of s in constant time.
func checkSecret(s Secret, key, receiving, originating, streamID string) (bool, error) {
	want, err := s.Key(receiving, originating, streamID)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1, nil
}
