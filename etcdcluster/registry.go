package etcdcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xmpp-s2s/federation/s2s"
)

// DefaultTTL is the lease of a node's entries when Options.TTL is 0: how
// long after a node dies (or loses etcd) its links stay claimed.
const DefaultTTL = 10 * time.Second

// Options configure a node's Registry.
type Options struct {
	// Node is this node's name, unique in the cluster. Required.
	Node string
	// Prefix is the etcd key prefix; "" means DefaultPrefix.
	Prefix string
	// TTL is the lease of this node's entries, renewed while the node
	// lives; 0 means DefaultTTL. etcd rounds it up to whole seconds and
	// to its own minimum.
	TTL time.Duration
}

// Registry is one node's view of the cluster's link registry on etcd: an
// [s2s.Registry]. Every entry it writes is under one lease of this node,
// kept alive while the Registry is open, so that when the node dies its
// entries expire with the lease and other nodes can claim its links. It is
// safe for concurrent use.
type Registry struct {
	cli    *clientv3.Client
	sess   *concurrency.Session
	node   string
	prefix string
}

var _ s2s.Registry = (*Registry)(nil)

// NewRegistry opens node's registry: it grants the node's lease and keeps
// it alive until Close or until ctx ends.
func NewRegistry(ctx context.Context, cli *clientv3.Client, o Options) (*Registry, error) {
	if o.Node == "" || strings.Contains(o.Node, "/") {
		return nil, fmt.Errorf("etcdcluster: node name %q: must be non-empty and without '/'", o.Node)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	ttl := int((o.TTL + time.Second - 1) / time.Second)
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcdcluster: the lease of node %s: %w", o.Node, err)
	}
	return &Registry{cli: cli, sess: sess, node: o.Node, prefix: o.Prefix}, nil
}

// Close revokes the node's lease: its entries are gone at once. The
// client stays open.
func (r *Registry) Close() error { return r.sess.Close() }

// Lost is closed when the node's lease ends: Close was called, or the
// node could not renew it in time (etcd unreachable for its TTL). From
// then on the node's entries are gone; a host should stop the node's
// Manager, or open a new Registry and restart it.
func (r *Registry) Lost() <-chan struct{} { return r.sess.Done() }

// Node implements s2s.Registry.
func (r *Registry) Node() string { return r.node }

// entry is the JSON value of a registry key.
type entry struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
}

func (r *Registry) value() string {
	b, _ := json.Marshal(entry{Node: r.node, Since: time.Now().UTC()})
	return string(b)
}

func (r *Registry) outPrefix(remote string) string { return r.prefix + "out/" + remote + "/" }
func (r *Registry) outKey(local, remote string) string {
	return r.outPrefix(remote) + local
}
func (r *Registry) inKey(local, remote string) string {
	return r.prefix + "in/" + r.node + "/" + local + "/" + remote
}

// Claim implements s2s.Registry. It reads the links to remote, then
// writes its claim in a transaction that holds only if the pair is still
// unclaimed and no link to remote was added since the read, so that the
// limit holds cluster-wide however many nodes claim at once.
func (r *Registry) Claim(ctx context.Context, local, remote string, limit int) (string, error) {
	key, rp := r.outKey(local, remote), r.outPrefix(remote)
	lease := r.sess.Lease()
	for range maxAttempts {
		resp, err := r.cli.Get(ctx, rp, clientv3.WithPrefix())
		if err != nil {
			return "", fmt.Errorf("etcdcluster: claim %s to %s: %w", local, remote, err)
		}
		var mine *int64
		for _, kv := range resp.Kvs {
			if string(kv.Key) != key {
				continue
			}
			var e entry
			if err := json.Unmarshal(kv.Value, &e); err != nil {
				return "", fmt.Errorf("etcdcluster: claim %s to %s: bad entry: %w", local, remote, err)
			}
			if e.Node != r.node || clientv3.LeaseID(kv.Lease) == lease {
				return e.Node, nil
			}
			// Our name under an old lease: this node restarted before
			// its previous lease expired. Take the entry over with the
			// new lease, or it would vanish under the live link.
			rev := kv.ModRevision
			mine = &rev
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		if mine != nil {
			cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", *mine)}
		} else if limit > 0 && len(resp.Kvs) >= limit {
			return "", fmt.Errorf("etcdcluster: %d links to %s (limit %d): %w", len(resp.Kvs), remote, limit, s2s.ErrLinkLimit)
		}
		if limit > 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(rp), "<", resp.Header.Revision+1).WithPrefix())
		}
		t, err := r.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, r.value(), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return "", fmt.Errorf("etcdcluster: claim %s to %s: %w", local, remote, err)
		}
		if t.Succeeded {
			return r.node, nil
		}
	}
	return "", fmt.Errorf("%w: claim %s to %s", ErrContention, local, remote)
}

// Release implements s2s.Registry: it deletes the claim only if it is
// under this node's lease.
func (r *Registry) Release(ctx context.Context, local, remote string) error {
	key := r.outKey(local, remote)
	_, err := r.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", r.sess.Lease())).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcdcluster: release %s to %s: %w", local, remote, err)
	}
	return nil
}

// AddIncoming implements s2s.Registry.
func (r *Registry) AddIncoming(ctx context.Context, local, remote string) error {
	if _, err := r.cli.Put(ctx, r.inKey(local, remote), r.value(), clientv3.WithLease(r.sess.Lease())); err != nil {
		return fmt.Errorf("etcdcluster: incoming %s from %s: %w", local, remote, err)
	}
	return nil
}

// RemoveIncoming implements s2s.Registry.
func (r *Registry) RemoveIncoming(ctx context.Context, local, remote string) error {
	if _, err := r.cli.Delete(ctx, r.inKey(local, remote)); err != nil {
		return fmt.Errorf("etcdcluster: incoming %s from %s: %w", local, remote, err)
	}
	return nil
}

// Entries implements s2s.Registry, from one consistent read of etcd.
func (r *Registry) Entries(ctx context.Context) ([]s2s.RegistryEntry, error) {
	resp, err := r.cli.Get(ctx, r.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdcluster: entries: %w", err)
	}
	var out []s2s.RegistryEntry
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), r.prefix)
		parts := strings.Split(rest, "/")
		var e entry
		var re s2s.RegistryEntry
		switch {
		case len(parts) == 3 && parts[0] == "out":
			re = s2s.RegistryEntry{Direction: s2s.Outgoing, Remote: parts[1], Local: parts[2]}
		case len(parts) == 4 && parts[0] == "in":
			re = s2s.RegistryEntry{Direction: s2s.Incoming, Node: parts[1], Local: parts[2], Remote: parts[3]}
		default:
			continue // the secret, or keys of a newer version
		}
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("etcdcluster: entry %s: %w", kv.Key, err)
		}
		re.Node, re.Since = e.Node, e.Since
		out = append(out, re)
	}
	return out, nil
}
