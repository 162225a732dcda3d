package etcdcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmpp-s2s/federation/dialback"
)

// DefaultPrefix is the etcd key prefix when none is given.
const DefaultPrefix = "/federation/"

// maxAttempts bounds the compare-and-swap retries of one call; each retry
// means another node changed the same key in between, so running out of
// them means heavy contention, reported as ErrContention.
const maxAttempts = 16

// ErrContention is returned when a compare-and-swap lost maxAttempts times
// in a row to other nodes.
var ErrContention = errors.New("etcdcluster: too much contention on a key")

// Secrets is the cluster's dialback secret on etcd: a
// [dialback.SecretSource] whose first generation is created once with a
// compare-and-swap and whose rotation is a transaction. Give it to
// dialback.Follow. It is safe for concurrent use.
type Secrets struct {
	cli *clientv3.Client
	key string
	now func() time.Time
}

// NewSecrets returns the secret store under prefix ("" means DefaultPrefix).
func NewSecrets(cli *clientv3.Client, prefix string) *Secrets {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Secrets{cli: cli, key: prefix + "secret", now: time.Now}
}

// stored is the JSON form of a Generation. Secret marshals to a
// placeholder on purpose, so the secrets are converted to strings here,
// the one place that writes them.
type stored struct {
	Version       int64     `json:"version"`
	Current       string    `json:"current"`
	Previous      string    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitzero"`
	// Older is read as nothing by nodes of a version that predates it:
	// they accept fewer old keys during a rolling upgrade, nothing worse.
	Older []storedRetired `json:"older,omitempty"`
}

type storedRetired struct {
	Secret string    `json:"secret"`
	Until  time.Time `json:"until"`
}

func encode(g dialback.Generation) string {
	s := stored{Version: g.Version, Current: string(g.Current), Previous: string(g.Previous), PreviousUntil: g.PreviousUntil}
	for _, r := range g.Older {
		s.Older = append(s.Older, storedRetired{string(r.Secret), r.Until})
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func decode(v []byte) (dialback.Generation, error) {
	var s stored
	if err := json.Unmarshal(v, &s); err != nil || s.Version < 1 || s.Current == "" {
		// Never wrap the JSON error: it could quote the secret.
		return dialback.Generation{}, errors.New("etcdcluster: the stored secret is not a generation this package wrote")
	}
	g := dialback.Generation{Version: s.Version, Current: dialback.Secret(s.Current),
		Previous: dialback.Secret(s.Previous), PreviousUntil: s.PreviousUntil}
	for _, r := range s.Older {
		g.Older = append(g.Older, dialback.Retired{Secret: dialback.Secret(r.Secret), Until: r.Until})
	}
	return g, nil
}

// Secrets implements dialback.SecretSource: it reads the generation, and
// creates the first one if there is none. Of several nodes starting at
// once, exactly one creates it (the put is conditional on the key not
// existing) and every node returns that one.
func (s *Secrets) Secrets(ctx context.Context) (dialback.Generation, error) {
	first := dialback.FirstGeneration(dialback.NewSecret())
	r, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.key), "=", 0)).
		Then(clientv3.OpPut(s.key, encode(first))).
		Else(clientv3.OpGet(s.key)).
		Commit()
	if err != nil {
		return dialback.Generation{}, fmt.Errorf("etcdcluster: reading the secret: %w", err)
	}
	if r.Succeeded {
		return first, nil
	}
	kvs := r.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return dialback.Generation{}, errors.New("etcdcluster: the secret vanished while being read")
	}
	return decode(kvs[0].Value)
}

// Rotate makes a new random secret current, keeping the current one
// accepted for grace, and returns the new generation. It is a transaction
// on the generation it read: when another node rotated in between, it
// reads again and rotates that one, so two rotations at once give two
// versions, never a lost one.
func (s *Secrets) Rotate(ctx context.Context, grace time.Duration) (dialback.Generation, error) {
	for range maxAttempts {
		r, err := s.cli.Get(ctx, s.key)
		if err != nil {
			return dialback.Generation{}, fmt.Errorf("etcdcluster: rotating the secret: %w", err)
		}
		if len(r.Kvs) == 0 {
			if _, err := s.Secrets(ctx); err != nil {
				return dialback.Generation{}, err
			}
			continue
		}
		old, err := decode(r.Kvs[0].Value)
		if err != nil {
			return dialback.Generation{}, err
		}
		next := old.Next(dialback.NewSecret(), grace, s.now())
		t, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.key), "=", r.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(s.key, encode(next))).
			Commit()
		if err != nil {
			return dialback.Generation{}, fmt.Errorf("etcdcluster: rotating the secret: %w", err)
		}
		if t.Succeeded {
			return next, nil
		}
	}
	return dialback.Generation{}, fmt.Errorf("%w: rotating the secret", ErrContention)
}

// Watch implements dialback.SecretSource: the newest generation, then each
// one stored after it, from an etcd watch that starts right after the read.
func (s *Secrets) Watch(ctx context.Context, f func(dialback.Generation)) error {
	g, err := s.Secrets(ctx)
	if err != nil {
		return err
	}
	r, err := s.cli.Get(ctx, s.key)
	if err != nil {
		return fmt.Errorf("etcdcluster: watching the secret: %w", err)
	}
	if len(r.Kvs) > 0 {
		if g, err = decode(r.Kvs[0].Value); err != nil {
			return err
		}
	}
	f(g)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range s.cli.Watch(clientv3.WithRequireLeader(wctx), s.key, clientv3.WithRev(r.Header.Revision+1)) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcdcluster: watching the secret: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			if g, err := decode(ev.Kv.Value); err == nil {
				f(g)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("etcdcluster: the watch of the secret ended")
}
