package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
)

// memRegistry is a Registry kept in memory, shared by the nodes of one
// test: the Manager's side of clustering is tested here, and the etcd
// adapter (etcdcluster module) runs the same scenarios on a real etcd.
type memRegistry struct {
	mu      sync.Mutex
	entries map[memKey]RegistryEntry
}

type memKey struct {
	node          string
	dir           Direction
	local, remote string
}

func newMemRegistry() *memRegistry { return &memRegistry{entries: map[memKey]RegistryEntry{}} }

// view is one node's Registry.
func (r *memRegistry) view(node string) Registry { return memView{r, node} }

func (r *memRegistry) forNode(node string) []RegistryEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []RegistryEntry
	for k, e := range r.entries {
		if k.node == node {
			out = append(out, e)
		}
	}
	return out
}

type memView struct {
	r    *memRegistry
	node string
}

func (v memView) Node() string { return v.node }

func (v memView) Claim(_ context.Context, local, remote string, limit int) (string, error) {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	n := 0
	for k := range v.r.entries {
		if k.dir != Outgoing || k.remote != remote {
			continue
		}
		if k.local == local {
			return k.node, nil
		}
		n++
	}
	if limit > 0 && n >= limit {
		return "", fmt.Errorf("%d links to %s: %w", n, remote, ErrLinkLimit)
	}
	v.r.entries[memKey{v.node, Outgoing, local, remote}] = RegistryEntry{Node: v.node, Direction: Outgoing, Local: local, Remote: remote, Since: time.Now()}
	return v.node, nil
}

func (v memView) Release(_ context.Context, local, remote string) error {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	delete(v.r.entries, memKey{v.node, Outgoing, local, remote})
	return nil
}

func (v memView) AddIncoming(_ context.Context, local, remote string) error {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	v.r.entries[memKey{v.node, Incoming, local, remote}] = RegistryEntry{Node: v.node, Direction: Incoming, Local: local, Remote: remote, Since: time.Now()}
	return nil
}

func (v memView) RemoveIncoming(_ context.Context, local, remote string) error {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	delete(v.r.entries, memKey{v.node, Incoming, local, remote})
	return nil
}

func (v memView) Entries(context.Context) ([]RegistryEntry, error) {
	v.r.mu.Lock()
	defer v.r.mu.Unlock()
	var out []RegistryEntry
	for _, e := range v.r.entries {
		out = append(out, e)
	}
	return out, nil
}

// clusterOf starts nodes serving local behind their own listeners, sharing
// reg and one dialback secret, and a remote node r.test that reaches local
// at the last node's address. Forward routes to the named node, or fails
// for a node in down.
func clusterOf(t *testing.T, n int, locals []string, reg *memRegistry, limit int) (nodes map[string]*node, remote *node, down *sync.Map) {
	t.Helper()
	down = &sync.Map{}
	nodes = map[string]*node{}
	var mu sync.Mutex
	lr := listen(t)
	keys := dialback.Secret("cluster secret")
	lns := make([]net.Listener, n)
	for i := range n {
		lns[i] = listen(t)
	}
	last := addrOf(lns[n-1])
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		peers := map[string]netip.AddrPort{"r.test": addrOf(lr)}
		cl := &Cluster{
			Registry:          reg.view(name),
			MaxLinksPerRemote: limit,
			Forward: func(ctx context.Context, to string, s Stanza) error {
				if _, dead := down.Load(to); dead {
					return errors.New("node unreachable")
				}
				mu.Lock()
				target := nodes[to]
				mu.Unlock()
				return target.m.SendStanza(ctx, s)
			},
		}
		nd := newNode(t, lns[i], locals, peers, withConfig(func(c *Config) {
			c.Keys = keys
			c.Cluster = cl
		}))
		mu.Lock()
		nodes[name] = nd
		mu.Unlock()
	}
	rpeers := map[string]netip.AddrPort{}
	for _, l := range locals {
		rpeers[l] = last
	}
	remote = newNode(t, lr, []string{"r.test"}, rpeers)
	return nodes, remote, down
}

func TestClusterForwardsToHolder(t *testing.T) {
	reg := newMemRegistry()
	nodes, r, _ := clusterOf(t, 2, []string{"c.test"}, reg, 0)
	n1, n2 := nodes["n1"], nodes["n2"]

	n1.send(`<message from='a@c.test' to='b@r.test' id='1'/>`)
	if got := r.nextDelivered(); got.ID != "1" {
		t.Fatalf("delivered %q", got.ID)
	}
	// n2 has no link: the registry says n1 holds it, so n2 forwards.
	n2.send(`<message from='a@c.test' to='b@r.test' id='2'/>`)
	n2.send(`<message from='a@c.test' to='b@r.test' id='3'/>`)
	for _, id := range []string{"2", "3"} {
		if got := r.nextDelivered(); got.ID != id {
			t.Fatalf("delivered %q, want %q", got.ID, id)
		}
	}
	if links := n2.m.Links(); len(links) != 0 {
		t.Fatalf("n2 opened links of its own: %+v", links)
	}
	links, err := n2.m.ClusterLinks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range links {
		if l.Node == "n1" && l.Direction == Outgoing && l.Local == "c.test" && l.Remote == "r.test" {
			found = true
		}
	}
	if !found {
		t.Fatalf("ClusterLinks on n2 does not show n1's link: %+v", links)
	}
}

func TestClusterLinkLimit(t *testing.T) {
	reg := newMemRegistry()
	nodes, r, _ := clusterOf(t, 1, []string{"c.test", "d.test"}, reg, 1)
	n1 := nodes["n1"]
	n1.send(`<message from='a@c.test' to='b@r.test' id='1'/>`)
	r.nextDelivered()
	n1.send(`<message from='a@d.test' to='b@r.test' id='2'/>`)
	b := n1.nextBounce()
	if b.Condition != stanza.ResourceConstraint || !errors.Is(b.Err, ErrLinkLimit) {
		t.Fatalf("bounce = %s (%v), want resource-constraint wrapping ErrLinkLimit", b.Condition, b.Err)
	}
}

func TestClusterForwardFails(t *testing.T) {
	reg := newMemRegistry()
	nodes, r, down := clusterOf(t, 2, []string{"c.test"}, reg, 0)
	n1, n2 := nodes["n1"], nodes["n2"]
	n1.send(`<message from='a@c.test' to='b@r.test' id='1'/>`)
	r.nextDelivered()
	down.Store("n1", true)
	n2.send(`<message from='a@c.test' to='b@r.test' id='2'/>`)
	if b := n2.nextBounce(); b.Condition != stanza.RemoteServerTimeout {
		t.Fatalf("bounce = %s: %s", b.Condition, b.Text)
	}
	// n1 is gone for good: its entries go (as a lease would expire), and
	// n2 takes the link over.
	n1.m.Close()
	for _, e := range reg.forNode("n1") {
		reg.view("n1").Release(context.Background(), e.Local, e.Remote)
	}
	// A stanza sent while n2 still hands its first attempt's queue to n1
	// goes the same way and bounces; the first one after that links.
	for i := 3; ; i++ {
		if i > 50 {
			t.Fatal("n2 never took the link over")
		}
		n2.send(fmt.Sprintf(`<message from='a@c.test' to='b@r.test' id='%d'/>`, i))
		select {
		case got := <-r.delivered:
			if got.ID != strconv.Itoa(i) {
				t.Fatalf("delivered %q, want %d", got.ID, i)
			}
		case b := <-n2.bounced:
			if b.Condition != stanza.RemoteServerTimeout {
				t.Fatalf("bounce = %s: %s", b.Condition, b.Text)
			}
			continue
		case <-time.After(wait):
			t.Fatal("neither delivered nor bounced")
		}
		break
	}
	if links := outgoing(n2.m.Links()); len(links) != 1 {
		t.Fatalf("n2 links after takeover: %+v", links)
	}
}

// Shutdown gives the node's links back to the registry; the incoming
// stream the remote opened to verify or send is recorded while it lives.
func TestClusterShutdownReleases(t *testing.T) {
	reg := newMemRegistry()
	nodes, r, _ := clusterOf(t, 1, []string{"c.test"}, reg, 0)
	n1 := nodes["n1"]
	n1.send(`<message from='a@c.test' to='b@r.test' id='1'/>`)
	r.nextDelivered()
	r.send(`<message from='b@r.test' to='a@c.test' id='back'/>`)
	if got := n1.nextDelivered(); got.ID != "back" {
		t.Fatalf("delivered %q", got.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// The incoming pair is recorded by the registry goroutine; flush
	// waits for it.
	if err := n1.m.cluster.flush(ctx); err != nil {
		t.Fatal(err)
	}
	var dirs []Direction
	for _, e := range reg.forNode("n1") {
		dirs = append(dirs, e.Direction)
	}
	if len(dirs) != 2 {
		t.Fatalf("n1's entries before Shutdown: %v, want one out and one in", dirs)
	}
	if err := r.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := reg.forNode("n1"); len(left) != 0 {
		t.Fatalf("entries left after Shutdown: %+v", left)
	}
}

func TestClusterConfig(t *testing.T) {
	for i, c := range []*Cluster{
		{},
		{Registry: newMemRegistry().view("n1")},
		{Registry: newMemRegistry().view(""), Forward: func(context.Context, string, Stanza) error { return nil }},
	} {
		cfg := Config{
			S2S: config.Default(), IsLocal: func(string) bool { return true },
			Deliver: func(Stanza) {}, Bounce: func(Bounce) {}, Cluster: c,
		}
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%d: New = %v, want ErrConfig", i, err)
		}
	}
}
