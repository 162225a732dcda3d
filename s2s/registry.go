package s2s

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
)

// Cluster makes a Manager one node of a cluster whose nodes serve the same
// local domains behind one DNS name, each with its own Manager. It is the
// link half of clustering; the other half is a shared dialback secret
// (Config.Keys with a dialback.Keyring that follows the cluster's store),
// so that any node can answer a <db:verify> for a key another node made.
//
// With a Cluster, the outgoing link of a (local, remote) pair is held by one
// node of the cluster at a time, as the Registry records: before a node
// opens a link it claims the pair, and when another node already holds it,
// the stanzas for that pair are handed to Forward for the host to route to
// that node. Incoming streams are recorded too, so that ClusterLinks shows
// the whole cluster.
type Cluster struct {
	// Registry is the cluster's shared record of links, for this node.
	// Required.
	Registry Registry

	// Forward hands a stanza to node, the cluster node that holds the
	// outgoing link of the stanza's (local, remote) pair. The host routes
	// it there and calls that node's Manager.SendStanza (a node that no
	// longer holds the link claims it again, so a stale route still
	// delivers). A non-nil error (node unreachable) bounces the stanza with
	// remote-server-timeout when the Registry still names that node (a
	// node that remembered the route asks the Registry again first); once
	// a dead node's entries expire, this node takes the link over.
	// Forward may be called from within Send and from the Manager's
	// goroutines, and must be safe for concurrent use. Required.
	Forward func(ctx context.Context, node string, s Stanza) error

	// MaxLinksPerRemote bounds the outgoing links to one remote domain
	// across the whole cluster, counted over all local domains, as
	// MongooseIM's max_s2s_connections does; a pair that would go over it
	// has its stanzas bounced with resource-constraint. 0 means no bound
	// beyond one link per (local, remote) pair.
	MaxLinksPerRemote int

	// Timeout bounds each call to the Registry; 0 means
	// DefaultRegistryTimeout.
	Timeout time.Duration
}

// DefaultRegistryTimeout bounds a Registry call when Cluster.Timeout is 0.
const DefaultRegistryTimeout = 5 * time.Second

// ownerTTL is how long a node believes, without asking the Registry again,
// that another node holds a pair's link. It bounds how long a node keeps
// forwarding after the holder let the link go, and so how soon links
// spread again over the nodes that want them.
const ownerTTL = 30 * time.Second

// ErrLinkLimit is wrapped by Registry.Claim when the cluster already holds
// Cluster.MaxLinksPerRemote outgoing links to the remote domain.
var ErrLinkLimit = errors.New("s2s: cluster-wide link limit reached")

// errRegistry wraps a Registry failure, which the Manager treats like a
// connection that timed out: the stanzas bounce with remote-server-timeout.
var errRegistry = errors.New("s2s: link registry unavailable")

// Registry is a cluster's shared record of s2s links, as seen from one node:
// which node holds the outgoing link of each (local, remote) pair, and
// which nodes have incoming streams authenticated for which pairs. Entries
// belong to the node that made them and vanish on their own when that node
// dies (an etcd lease, a database row with an expiry), so that another
// node can take its links over. The etcdcluster module of this repository
// implements it on etcd.
//
// Domains are lower-case A-labels. Implementations must be safe for
// concurrent use; the Manager calls them with a context bounded by
// Cluster.Timeout, one call at a time, in the order of the events they
// record.
type Registry interface {
	// Node returns this node's name, unique in the cluster.
	Node() string

	// Claim records that this node holds the outgoing link of (local,
	// remote), unless a live node already does: then it records nothing
	// and returns that node's name. It returns Node() when this node holds
	// it (now or already). It is atomic cluster-wide: of several nodes
	// claiming one pair at once, one wins and the others learn its name.
	// When limit > 0 and the cluster already holds limit outgoing links to
	// remote, it fails with an error wrapping ErrLinkLimit.
	Claim(ctx context.Context, local, remote string, limit int) (owner string, err error)

	// Release removes this node's claim on (local, remote), if it holds
	// one; it never removes another node's.
	Release(ctx context.Context, local, remote string) error

	// AddIncoming records that this node has an incoming stream
	// authenticated for (local, remote); RemoveIncoming removes that.
	AddIncoming(ctx context.Context, local, remote string) error
	RemoveIncoming(ctx context.Context, local, remote string) error

	// Entries lists the live entries of every node of the cluster.
	Entries(ctx context.Context) ([]RegistryEntry, error)
}

// RegistryEntry is one link of a cluster: an outgoing link a node holds, or
// a pair authenticated on a node's incoming stream.
type RegistryEntry struct {
	Node      string
	Direction Direction
	Local     string
	Remote    string
	Since     time.Time // when the entry was made
}

// cluster is the Manager's side of a Cluster: what it believes other nodes
// hold, and the queue of Registry calls, made one at a time in order by a
// goroutine of its own so that a slow registry never holds up a stream.
type cluster struct {
	c    Cluster
	m    *Manager
	node string

	mu     sync.Mutex
	owners map[pair]owned // pairs whose link another node holds
	in     map[pair]int   // incoming streams per pair on this node
	queue  []func(context.Context)
	wake   chan struct{} // a cap-1 signal: queue is not empty
	idle   chan struct{} // closed and replaced whenever the queue empties
	busy   bool
}

type owned struct {
	node  string
	until time.Time
}

func newCluster(m *Manager, c Cluster) (*cluster, error) {
	if c.Registry == nil || c.Forward == nil {
		return nil, fmt.Errorf("%w: Cluster needs a Registry and a Forward callback", ErrConfig)
	}
	if c.Registry.Node() == "" {
		return nil, fmt.Errorf("%w: the Registry has no node name", ErrConfig)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultRegistryTimeout
	}
	return &cluster{
		c:      c,
		m:      m,
		node:   c.Registry.Node(),
		owners: make(map[pair]owned),
		in:     make(map[pair]int),
		wake:   make(chan struct{}, 1),
		idle:   make(chan struct{}),
	}, nil
}

// run makes the queued Registry calls until ctx ends.
func (c *cluster) run(ctx context.Context) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.busy = false
			close(c.idle)
			c.idle = make(chan struct{})
			c.mu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		f := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.busy = true
		c.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, c.c.Timeout)
		f(rctx)
		cancel()
	}
}

// enqueueLocked adds a Registry call; the caller holds c.mu.
func (c *cluster) enqueueLocked(f func(context.Context)) {
	c.queue = append(c.queue, f)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// flush waits until every queued call was made, or ctx ends. Once the
// Manager closed, calls still queued are not made (the entries expire with
// the node's lease), and flush returns at once.
func (c *cluster) flush(ctx context.Context) error {
	c.mu.Lock()
	if len(c.queue) == 0 && !c.busy {
		c.mu.Unlock()
		return nil
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-c.m.ctx.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// event records what an event changes in the registry.
func (c *cluster) event(e Event) {
	p := pair{e.Link.Local, e.Link.Remote}
	reg := c.c.Registry
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e.Kind == LinkUp && e.Link.Direction == Incoming:
		if c.in[p]++; c.in[p] == 1 {
			c.enqueueLocked(func(ctx context.Context) { c.logErr(reg.AddIncoming(ctx, p.local, p.remote), "add incoming", p) })
		}
	case e.Kind == LinkDown && e.Link.Direction == Incoming:
		if c.in[p]--; c.in[p] <= 0 {
			delete(c.in, p)
			c.enqueueLocked(func(ctx context.Context) { c.logErr(reg.RemoveIncoming(ctx, p.local, p.remote), "remove incoming", p) })
		}
	case (e.Kind == LinkDown || e.Kind == AuthFailed) && e.Link.Direction == Outgoing:
		// The link is gone (or never came up): let another node have it.
		c.enqueueLocked(func(ctx context.Context) { c.logErr(reg.Release(ctx, p.local, p.remote), "release", p) })
	}
}

func (c *cluster) logErr(err error, op string, p pair) {
	if err != nil {
		c.m.log.Warn("s2s: link registry", "op", op, "local", p.local, "remote", p.remote, "err", err)
	}
}

// claim asks the Registry for p's link, after every call queued before it.
func (c *cluster) claim(ctx context.Context, p pair) (string, error) {
	type answer struct {
		owner string
		err   error
	}
	done := make(chan answer, 1)
	c.mu.Lock()
	c.enqueueLocked(func(rctx context.Context) {
		owner, err := c.c.Registry.Claim(rctx, p.local, p.remote, c.c.MaxLinksPerRemote)
		done <- answer{owner, err}
	})
	c.mu.Unlock()
	select {
	case a := <-done:
		switch {
		case errors.Is(a.err, ErrLinkLimit):
			return "", a.err
		case a.err != nil:
			return "", fmt.Errorf("%w: %w", errRegistry, a.err)
		case a.owner == "":
			return "", fmt.Errorf("%w: claim named no node", errRegistry)
		}
		return a.owner, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%w: %w", errRegistry, ctx.Err())
	}
}

// owner returns the node that holds p's link as last heard, if that is
// another node and recent enough.
func (c *cluster) owner(p pair) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.owners[p]
	if !ok {
		return ""
	}
	if c.m.clock.Now().After(o.until) {
		delete(c.owners, p)
		return ""
	}
	return o.node
}

func (c *cluster) setOwner(p pair, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.m.clock.Now()
	if node == "" || node == c.node {
		delete(c.owners, p)
		return
	}
	if len(c.owners) >= 1024 {
		// Forget what has expired, so that the map holds only live routes.
		for k, o := range c.owners {
			if now.After(o.until) {
				delete(c.owners, k)
			}
		}
	}
	c.owners[p] = owned{node: node, until: now.Add(ownerTTL)}
}

// forget drops what this node believed about p's holder, if it was node.
func (c *cluster) forget(p pair, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owners[p].node == node {
		delete(c.owners, p)
	}
}

// tryForward hands s to node, which held its pair's link when the Registry
// was last asked. When node cannot be reached, it forgets that and reports
// false, leaving s to the caller, which asks the Registry again.
func (c *cluster) tryForward(ctx context.Context, p pair, node string, s Stanza) bool {
	fctx, cancel := context.WithTimeout(ctx, c.c.Timeout)
	err := c.c.Forward(fctx, node, s)
	cancel()
	if err != nil {
		c.forget(p, node)
		c.m.log.Warn("s2s: cluster node unreachable; asking the registry again", "node", node, "local", p.local, "remote", p.remote, "err", err)
		return false
	}
	return true
}

// forward hands s to the node that holds its pair's link, or bounces it
// (false).
func (c *cluster) forward(ctx context.Context, p pair, node string, s Stanza) bool {
	fctx, cancel := context.WithTimeout(ctx, c.c.Timeout)
	err := c.c.Forward(fctx, node, s)
	cancel()
	if err != nil {
		c.forget(p, node)
		c.m.bounce(s, stanza.RemoteServerTimeout,
			fmt.Sprintf("cluster node %s holds the link %s to %s and could not be reached: %v", node, p.local, p.remote, err), err)
		return false
	}
	return true
}

// claimOut runs before an outgoing link of this node connects. It reports
// whether this node may open the link; when it may not, the link's queue
// was handed on (another node holds the pair) or bounced (the Registry
// failed or the limit is reached), and the link is idle again.
func (l *outLink) claimOut(ctx context.Context, st *settings, began time.Time) bool {
	c := l.m.cluster
	if c == nil {
		return true
	}
	owner, err := c.claim(ctx, l.pair)
	if err != nil {
		l.connectFailed(st, err, l.m.clock.Now().Sub(began))
		return false
	}
	if owner == c.node {
		c.setOwner(l.pair, "")
		return true
	}
	// Another node holds it: hand on what waits, in order, until the
	// queue stays empty; then the link leaves the Manager and later
	// stanzas of the pair go to the holder directly from Send.
	m := l.m
	reached := true
	for {
		l.mu.Lock()
		q := l.queue
		l.queue = nil
		if len(q) == 0 {
			l.cancel = nil
			l.removed = true
			l.mu.Unlock()
			m.mu.Lock()
			if m.out[l.pair] == l {
				delete(m.out, l.pair)
			}
			if reached {
				c.setOwner(l.pair, owner)
			}
			m.mu.Unlock()
			return false
		}
		l.mu.Unlock()
		for _, s := range q {
			if !c.forward(m.ctx, l.pair, owner, s) {
				reached = false
			}
		}
	}
}

// ClusterLinks returns the links of the whole cluster: this node's, as
// Links returns them, with Node set, followed by the Registry's entries of
// the other nodes (which carry Node, Direction, Local, Remote and Since).
// Without a Cluster it returns Links.
func (m *Manager) ClusterLinks(ctx context.Context) ([]LinkInfo, error) {
	links := m.Links()
	c := m.cluster
	if c == nil {
		return links, nil
	}
	for i := range links {
		links[i].Node = c.node
	}
	entries, err := c.c.Registry.Entries(ctx)
	if err != nil {
		return links, fmt.Errorf("%w: %w", errRegistry, err)
	}
	for _, e := range entries {
		if e.Node == c.node {
			continue
		}
		links = append(links, LinkInfo{Node: e.Node, Direction: e.Direction, Local: e.Local, Remote: e.Remote, Since: e.Since})
	}
	return links, nil
}
