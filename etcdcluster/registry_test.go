package etcdcluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmpp-s2s/federation/s2s"
)

func newRegistry(t testing.TB, c *clientv3.Client, p, node string, ttl time.Duration) *Registry {
	t.Helper()
	r, err := NewRegistry(context.Background(), c, Options{Node: node, Prefix: p, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Of nodes claiming one pair at once, one wins and all name it.
func TestRegistryClaimOnce(t *testing.T) {
	p := prefix()
	const n = 5
	owners := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		r := newRegistry(t, client(t), p, fmt.Sprintf("n%d", i), 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := r.Claim(testCtx(t), "cluster.test", "remote.test", 0)
			if err != nil {
				t.Error(err)
			}
			owners[i] = o
		}()
	}
	wg.Wait()
	for _, o := range owners {
		if o == "" || o != owners[0] {
			t.Fatalf("owners = %v", owners)
		}
	}
}

// The per-remote limit holds across nodes claiming different pairs at once.
func TestRegistryLimit(t *testing.T) {
	p := prefix()
	const n, limit = 6, 2
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, limited := 0, 0
	for i := range n {
		r := newRegistry(t, client(t), p, fmt.Sprintf("n%d", i), 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := r.Claim(testCtx(t), fmt.Sprintf("d%d.cluster.test", i), "remote.test", limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, s2s.ErrLinkLimit):
				limited++
			case err != nil:
				t.Error(err)
			case o == r.Node():
				won++
			}
		}()
	}
	wg.Wait()
	if won != limit || limited != n-limit {
		t.Fatalf("%d claims won, %d limited; want %d and %d", won, limited, limit, n-limit)
	}
	// Other remote domains have their own count.
	r := newRegistry(t, client(t), p, "other", 0)
	if o, err := r.Claim(testCtx(t), "d0.cluster.test", "elsewhere.test", limit); err != nil || o != "other" {
		t.Fatalf("claim for another remote = %q, %v", o, err)
	}
}

// Release removes this node's claim only; then another node can claim.
func TestRegistryRelease(t *testing.T) {
	p := prefix()
	a := newRegistry(t, client(t), p, "a", 0)
	b := newRegistry(t, client(t), p, "b", 0)
	ctx := testCtx(t)
	if o, err := a.Claim(ctx, "cluster.test", "remote.test", 1); err != nil || o != "a" {
		t.Fatalf("a claims: %q, %v", o, err)
	}
	if err := b.Release(ctx, "cluster.test", "remote.test"); err != nil {
		t.Fatal(err)
	}
	if o, err := b.Claim(ctx, "cluster.test", "remote.test", 1); err != nil || o != "a" {
		t.Fatalf("b's Release removed a's claim: %q, %v", o, err)
	}
	if err := a.Release(ctx, "cluster.test", "remote.test"); err != nil {
		t.Fatal(err)
	}
	if o, err := b.Claim(ctx, "cluster.test", "remote.test", 1); err != nil || o != "b" {
		t.Fatalf("b claims after a released: %q, %v", o, err)
	}
}

// Entries lists both directions of every node; Close removes a node's at once.
func TestRegistryEntriesAndClose(t *testing.T) {
	p := prefix()
	a := newRegistry(t, client(t), p, "a", 0)
	b := newRegistry(t, client(t), p, "b", 0)
	ctx := testCtx(t)
	a.Claim(ctx, "cluster.test", "remote.test", 0)
	if err := b.AddIncoming(ctx, "cluster.test", "remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddIncoming(ctx, "cluster.test", "other.test"); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveIncoming(ctx, "cluster.test", "other.test"); err != nil {
		t.Fatal(err)
	}
	es, err := a.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"a out cluster.test remote.test": true, "b in cluster.test remote.test": true}
	if len(es) != len(want) {
		t.Fatalf("entries = %+v", es)
	}
	for _, e := range es {
		if k := fmt.Sprintf("%s %s %s %s", e.Node, e.Direction, e.Local, e.Remote); !want[k] || e.Since.IsZero() {
			t.Fatalf("unexpected entry %q in %+v", k, es)
		}
	}
	a.Close()
	<-a.Lost()
	es, err = b.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Node != "b" {
		t.Fatalf("after a closed: %+v", es)
	}
}

// A node that dies without closing (its client gone, its lease no longer
// renewed) loses its entries when the lease expires.
func TestRegistryExpires(t *testing.T) {
	p := prefix()
	dying, err := etcd.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewRegistry(context.Background(), dying, Options{Node: "a", Prefix: p, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	a.Claim(ctx, "cluster.test", "remote.test", 0)
	a.AddIncoming(ctx, "cluster.test", "remote.test")
	obs := client(t)
	start, err := obs.Get(ctx, p, clientv3.WithPrefix())
	if err != nil || len(start.Kvs) != 2 {
		t.Fatalf("before: %v, %v", start, err)
	}
	w := obs.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	dying.Close() // no revoke: the lease must run out
	deleted := 0
	for resp := range w {
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				deleted++
			}
		}
		if deleted == 2 {
			break
		}
	}
	if deleted != 2 {
		t.Fatalf("%d of 2 entries expired", deleted)
	}
	b := newRegistry(t, client(t), p, "b", 0)
	if o, err := b.Claim(ctx, "cluster.test", "remote.test", 1); err != nil || o != "b" {
		t.Fatalf("b after a expired: %q, %v", o, err)
	}
}

// A node that restarts under its old name before its old lease expired
// takes its entries over with the new lease, so they do not vanish under
// its live links.
func TestRegistryRestartTakesOver(t *testing.T) {
	p := prefix()
	old, err := etcd.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a1, err := NewRegistry(context.Background(), old, Options{Node: "a", Prefix: p, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	a1.Claim(ctx, "cluster.test", "remote.test", 0)
	old.Close()
	a2 := newRegistry(t, client(t), p, "a", 0)
	if o, err := a2.Claim(ctx, "cluster.test", "remote.test", 0); err != nil || o != "a" {
		t.Fatalf("restart claims: %q, %v", o, err)
	}
	r, err := client(t).Get(ctx, p+"out/remote.test/cluster.test")
	if err != nil || len(r.Kvs) != 1 || clientv3.LeaseID(r.Kvs[0].Lease) != a2.sess.Lease() {
		t.Fatalf("the entry is not under the new lease: %v, %v", r, err)
	}
}

func TestRegistryOptions(t *testing.T) {
	for _, node := range []string{"", "a/b"} {
		if _, err := NewRegistry(context.Background(), client(t), Options{Node: node}); err == nil {
			t.Errorf("node %q accepted", node)
		}
	}
}

// A node whose lease ends while it lives (revoked here; etcd unreachable
// for its TTL in production) gets a new lease and writes its entries again,
// except a claim another node took while it had none.
func TestRegistryLeaseLostRenewed(t *testing.T) {
	p := prefix()
	a := newRegistry(t, client(t), p, "a", 2*time.Second)
	ctx := testCtx(t)
	for _, local := range []string{"one.test", "two.test"} {
		if o, err := a.Claim(ctx, local, "remote.test", 0); err != nil || o != "a" {
			t.Fatalf("claim %s: %q, %v", local, o, err)
		}
	}
	if err := a.AddIncoming(ctx, "cluster.test", "peer.test"); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	old := a.sess.Lease()
	a.mu.Unlock()

	obs := client(t)
	start, err := obs.Get(ctx, p, clientv3.WithPrefix())
	if err != nil || len(start.Kvs) != 3 {
		t.Fatalf("before: %v, %v", start, err)
	}
	w := obs.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	if _, err := obs.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Another node claims one of the pairs while a has no lease (or just
	// after it got one back: either may win, but only one).
	b := newRegistry(t, client(t), p, "b", 0)
	winner, err := b.Claim(ctx, "two.test", "remote.test", 0)
	if err != nil {
		t.Fatal(err)
	}

	one, two, in := p+"out/remote.test/one.test", p+"out/remote.test/two.test", p+"in/a/cluster.test/peer.test"
	put := map[string]bool{}
	for resp := range w {
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut {
				put[string(ev.Kv.Key)] = true
			}
		}
		if put[one] && put[two] && put[in] {
			break
		}
	}
	if !put[one] || !put[two] || !put[in] {
		t.Fatalf("written again: %v", put)
	}
	if o, err := a.Claim(ctx, "two.test", "remote.test", 0); err != nil || o != winner {
		t.Fatalf("a's claim on the contested pair: %q, %v; b's said %q", o, err, winner)
	}
	a.mu.Lock()
	lease := a.sess.Lease()
	a.mu.Unlock()
	if lease == old {
		t.Fatal("the lease was not replaced")
	}
	for _, key := range []string{one, in} {
		r, err := obs.Get(ctx, key)
		if err != nil || len(r.Kvs) != 1 || clientv3.LeaseID(r.Kvs[0].Lease) != lease {
			t.Fatalf("%s is not under the new lease: %v, %v", key, r, err)
		}
	}
	if n := a.Lapses(); n != 1 {
		t.Errorf("Lapses() = %d, want 1", n)
	}
	select {
	case <-a.Lost():
		t.Fatal("Lost closed on a lease that was replaced")
	default:
	}
	a.Close()
	<-a.Lost()
	if _, err := a.Claim(ctx, "three.test", "remote.test", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Claim after Close: %v, want ErrClosed", err)
	}
}
