package etcdcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	// Logger receives a warning when the node's lease was lost and
	// replaced; nil means slog.Default().
	Logger *slog.Logger
}

// Registry is one node's view of the cluster's link registry on etcd: an
// [s2s.Registry]. Every entry it writes is under one lease of this node,
// kept alive while the Registry is open, so that when the node dies its
// entries expire with the lease and other nodes can claim its links.
//
// A lease can end while the node lives: etcd unreachable for longer than
// the TTL, a partition, an operator's revoke. Its entries are then gone
// from etcd while the node's links are still up, and other nodes would
// open second links for those pairs. So the Registry grants itself a new
// lease and writes its entries again under it: each incoming pair, and
// each outgoing claim that no other node took in the meantime (one that was
// taken stays the other node's; this node's link keeps working until it
// closes, and the next Claim names the new holder). It is safe for
// concurrent use.
type Registry struct {
	cli    *clientv3.Client
	node   string
	prefix string
	ttl    int
	ctx    context.Context // NewRegistry's: leases are renewed while it lasts
	log    *slog.Logger

	mu     sync.Mutex
	sess   *concurrency.Session // the lease in force
	fresh  chan struct{}        // closed when sess is replaced
	held   map[heldKey]struct{} // the entries this node wrote, to write again
	closed bool
	lost   chan struct{} // closed when the Registry stops for good
	lapses int           // leases lost and replaced
}

// heldKey is an entry of this node's: an outgoing claim or an incoming pair.
type heldKey struct {
	out           bool
	local, remote string
}

var _ s2s.Registry = (*Registry)(nil)

// ErrClosed is returned by a Registry's methods after Close, or once the
// context given to NewRegistry ended.
var ErrClosed = errors.New("etcdcluster: registry closed")

// NewRegistry opens node's registry: it grants the node's lease and keeps
// it alive, replacing it when it is lost, until Close or until ctx ends.
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Registry{cli: cli, node: o.Node, prefix: o.Prefix, ctx: ctx, log: o.Logger,
		ttl:   int((o.TTL + time.Second - 1) / time.Second),
		fresh: make(chan struct{}), held: make(map[heldKey]struct{}), lost: make(chan struct{})}
	sess, err := r.grant()
	if err != nil {
		return nil, fmt.Errorf("etcdcluster: the lease of node %s: %w", o.Node, err)
	}
	r.sess = sess
	go r.keep()
	return r, nil
}

func (r *Registry) grant() (*concurrency.Session, error) {
	return concurrency.NewSession(r.cli, concurrency.WithTTL(r.ttl), concurrency.WithContext(r.ctx))
}

// Close revokes the node's lease: its entries are gone at once. The
// client stays open.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	sess := r.sess
	r.mu.Unlock()
	return sess.Close()
}

// Lost is closed when the Registry stops for good: Close was called, or
// the context given to NewRegistry ended. From then on the node's entries
// are gone (once its last lease runs out); a host should stop the node's
// Manager, or open a new Registry and restart it. A lease lost while the
// Registry is open does not close it: see Registry.
func (r *Registry) Lost() <-chan struct{} { return r.lost }

// Lapses returns how many times the node's lease was lost and replaced
// while the Registry was open.
func (r *Registry) Lapses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lapses
}

// keep replaces the lease each time it is lost, until the Registry stops.
func (r *Registry) keep() {
	defer close(r.lost)
	for {
		r.mu.Lock()
		sess := r.sess
		r.mu.Unlock()
		<-sess.Done()
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed || r.ctx.Err() != nil {
			return
		}
		next, ok := r.regrant()
		if !ok {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			next.Close()
			return
		}
		r.sess = next
		r.lapses++
		held := make([]heldKey, 0, len(r.held))
		for k := range r.held {
			held = append(held, k)
		}
		close(r.fresh)
		r.fresh = make(chan struct{})
		r.mu.Unlock()
		taken := r.rewrite(held)
		r.log.Warn("etcdcluster: the node's lease was lost; its entries are written again under a new one",
			"node", r.node, "entries", len(held), "taken_by_others", taken)
	}
}

// regrant asks for a new lease until it gets one, waiting longer after each
// failure (up to the TTL), or until the Registry stops.
func (r *Registry) regrant() (*concurrency.Session, bool) {
	delay := 100 * time.Millisecond
	for {
		sess, err := r.grant()
		if err == nil {
			return sess, true
		}
		r.log.Warn("etcdcluster: no new lease yet", "node", r.node, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return nil, false
		}
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, false
		}
		delay = min(2*delay, time.Duration(r.ttl)*time.Second)
	}
}

// rewrite writes held again under the lease in force, and returns how many
// outgoing claims another node took while this node had no lease.
func (r *Registry) rewrite(held []heldKey) (taken int) {
	for _, k := range held {
		ctx, cancel := context.WithTimeout(r.ctx, time.Duration(r.ttl)*time.Second)
		var err error
		if k.out {
			var owner string
			owner, err = r.Claim(ctx, k.local, k.remote, 0)
			if err == nil && owner != r.node {
				taken++
			}
		} else {
			err = r.AddIncoming(ctx, k.local, k.remote)
		}
		cancel()
		if err != nil && r.ctx.Err() == nil {
			// The lease in force ended again, or etcd is down: the next
			// lease writes it; keep stays on it.
			r.log.Warn("etcdcluster: could not write an entry again", "node", r.node,
				"local", k.local, "remote", k.remote, "err", err)
		}
	}
	return taken
}

// lease returns the lease in force, waiting for its replacement while a
// lost one is being replaced.
func (r *Registry) lease(ctx context.Context) (clientv3.LeaseID, error) {
	for {
		r.mu.Lock()
		sess, fresh, closed := r.sess, r.fresh, r.closed
		r.mu.Unlock()
		if closed {
			return 0, ErrClosed
		}
		select {
		case <-sess.Done():
		default:
			return sess.Lease(), nil
		}
		select {
		case <-fresh:
		case <-r.lost:
			return 0, ErrClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// current reports whether lease is still the one in force.
func (r *Registry) current(lease clientv3.LeaseID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sess.Lease() == lease
}

func (r *Registry) hold(k heldKey, keep bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if keep {
		r.held[k] = struct{}{}
	} else {
		delete(r.held, k)
	}
}

// leaseGone reports an etcd answer saying a lease no longer exists: the
// write raced the lease's end, and is made again under the next one.
func leaseGone(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound)
}

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
	// Held before it is written, so that a lease replaced meanwhile
	// writes it again; given up below if another node holds it.
	k := heldKey{out: true, local: local, remote: remote}
	r.hold(k, true)
	owner, err := r.claim(ctx, key, rp, local, remote, limit)
	if err != nil || owner != r.node {
		r.hold(k, false)
	}
	return owner, err
}

func (r *Registry) claim(ctx context.Context, key, rp, local, remote string, limit int) (string, error) {
	for range maxAttempts {
		lease, err := r.lease(ctx)
		if err != nil {
			return "", fmt.Errorf("etcdcluster: claim %s to %s: %w", local, remote, err)
		}
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
		switch {
		case leaseGone(err):
			continue // under the next lease
		case err != nil:
			return "", fmt.Errorf("etcdcluster: claim %s to %s: %w", local, remote, err)
		case t.Succeeded && r.current(lease):
			return r.node, nil
		}
		// Lost the race, or the lease was replaced as we wrote: look
		// again (an entry of ours under an old lease is taken over).
	}
	return "", fmt.Errorf("%w: claim %s to %s", ErrContention, local, remote)
}

// Release implements s2s.Registry: it deletes the claim only if it is
// under this node's lease.
func (r *Registry) Release(ctx context.Context, local, remote string) error {
	r.hold(heldKey{out: true, local: local, remote: remote}, false)
	key := r.outKey(local, remote)
	lease, err := r.lease(ctx)
	if err != nil {
		return fmt.Errorf("etcdcluster: release %s to %s: %w", local, remote, err)
	}
	_, err = r.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcdcluster: release %s to %s: %w", local, remote, err)
	}
	return nil
}

// AddIncoming implements s2s.Registry.
func (r *Registry) AddIncoming(ctx context.Context, local, remote string) error {
	r.hold(heldKey{local: local, remote: remote}, true)
	for {
		lease, err := r.lease(ctx)
		if err == nil {
			_, err = r.cli.Put(ctx, r.inKey(local, remote), r.value(), clientv3.WithLease(lease))
		}
		switch {
		case leaseGone(err):
		case err != nil:
			return fmt.Errorf("etcdcluster: incoming %s from %s: %w", local, remote, err)
		case r.current(lease):
			return nil
		}
		// The lease ended as we wrote: write under the next one.
	}
}

// RemoveIncoming implements s2s.Registry.
func (r *Registry) RemoveIncoming(ctx context.Context, local, remote string) error {
	r.hold(heldKey{local: local, remote: remote}, false)
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
