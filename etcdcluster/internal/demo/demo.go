// Package demo assembles a whole cluster on loopback, for the adapter's
// end-to-end test and its runnable example: one embedded etcd, N nodes (each
// an s2s.Manager serving one domain, sharing the dialback secret and the link
// registry through etcd) behind a round-robin TCP front, and a remote server
// (a Manager of its own) that reaches the cluster's domain only through the
// front. Every key a node makes and every key a node checks is recorded, so
// that a test can prove which node verified which node's key.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/etcdcluster"
	"github.com/xmpp-s2s/federation/etcdcluster/internal/embedded"
	"github.com/xmpp-s2s/federation/etcdcluster/internal/front"
	"github.com/xmpp-s2s/federation/s2s"
)

// Options shape a demo cluster.
type Options struct {
	Nodes   int      // cluster nodes; 0 means 3
	Domain  string   // the cluster's domain; "" means cluster.test
	Remotes []string // the remote server's domains; nil means [remote.test]
	// NoRemote starts no remote Manager: the test brings its own remote
	// server (Prosody) and tells the nodes where it is with AddRemote.
	NoRemote bool
	TTL      time.Duration // lease of each node's registry entries; 0 means 2 s
	Logger   *slog.Logger  // the Managers' logs; nil discards them
}

// Cluster is a running demo cluster.
type Cluster struct {
	Domain  string
	Etcd    *embedded.Server
	Front   *front.Front
	Nodes   []*Node
	Remote  *Remote
	Secrets *etcdcluster.Secrets // for rotating the secret
	Keys    *KeyLog

	obs    *clientv3.Client
	prefix string
}

// Node is one node of the cluster.
type Node struct {
	Name      string
	M         *s2s.Manager
	Registry  *etcdcluster.Registry
	Delivered chan s2s.Stanza
	Bounced   chan s2s.Bounce

	cli    *clientv3.Client
	stop   context.CancelFunc // ends the keyring's watch
	killed atomic.Bool
	s2s    config.S2S // the options it runs with, for AddRemote
}

// Remote is the remote server: a Manager serving the remote domains.
type Remote struct {
	M         *s2s.Manager
	Delivered chan s2s.Stanza
	Bounced   chan s2s.Bounce
	LinkDowns chan s2s.LinkInfo // the remote's links that went down
}

// Start starts etcd, the nodes, the front and the remote server.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Domain == "" {
		o.Domain = "cluster.test"
	}
	if o.Remotes == nil {
		o.Remotes = []string{"remote.test"}
	}
	if o.TTL == 0 {
		o.TTL = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c = &Cluster{Domain: o.Domain, Keys: &KeyLog{made: map[string]string{}}, prefix: "/demo/"}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.Etcd, err = embedded.Start(2 * time.Minute); err != nil {
		return c, err
	}
	if c.obs, err = c.Etcd.Client(ctx); err != nil {
		return c, err
	}
	c.Secrets = etcdcluster.NewSecrets(c.obs, c.prefix)

	lnRemote, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return c, err
	}
	remoteAddr := lnRemote.Addr().(*net.TCPAddr).AddrPort()

	var backends []front.Backend
	var lns []net.Listener
	for i := range o.Nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			lnRemote.Close()
			return c, err
		}
		lns = append(lns, ln)
		backends = append(backends, front.Backend{Name: nodeName(i), Addr: ln.Addr().String()})
	}
	// The first connection through the front goes to the second node, so
	// that the first <db:verify> for a key the first node made lands
	// elsewhere; after that, plain round robin.
	backends = append(backends[1:], backends[0])
	if c.Front, err = front.New(backends); err != nil {
		lnRemote.Close()
		return c, err
	}

	for i := range o.Nodes {
		n, err := c.startNode(ctx, o, nodeName(i), lns[i], remoteAddr)
		if err != nil {
			lnRemote.Close()
			for _, ln := range lns[i:] {
				ln.Close()
			}
			return c, err
		}
		c.Nodes = append(c.Nodes, n)
	}

	if o.NoRemote {
		lnRemote.Close()
		return c, nil
	}
	s := config.Default()
	s.Address = []config.Address{{Host: o.Domain, IP: c.Front.Addr().AddrPort().Addr(), Port: c.Front.Addr().Port}}
	c.Remote = &Remote{Delivered: make(chan s2s.Stanza, 10000), Bounced: make(chan s2s.Bounce, 10000),
		LinkDowns: make(chan s2s.LinkInfo, 10000)}
	remotes := map[string]bool{}
	for _, d := range o.Remotes {
		remotes[d] = true
	}
	c.Remote.M, err = s2s.New(s2s.Config{
		S2S:     s,
		IsLocal: func(d string) bool { return remotes[d] },
		Deliver: func(st s2s.Stanza) { c.Remote.Delivered <- st },
		Bounce:  func(b s2s.Bounce) { c.Remote.Bounced <- b },
		Logger:  o.Logger.With("node", "remote"),
		Observer: func(e s2s.Event) {
			if e.Kind == s2s.LinkDown {
				select {
				case c.Remote.LinkDowns <- e.Link:
				default:
				}
			}
		},
	})
	if err != nil {
		lnRemote.Close()
		return c, err
	}
	go c.Remote.M.Serve(lnRemote)
	return c, nil
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i+1) }

func (c *Cluster) startNode(ctx context.Context, o Options, name string, ln net.Listener, remote netip.AddrPort) (*Node, error) {
	n := &Node{Name: name, Delivered: make(chan s2s.Stanza, 10000), Bounced: make(chan s2s.Bounce, 10000)}
	var err error
	if n.cli, err = c.Etcd.Client(ctx); err != nil {
		ln.Close()
		return nil, err
	}
	// The keyring follows the store, and the lease lives, until the node
	// is stopped, not just for the start-up ctx.
	var fctx context.Context
	fctx, n.stop = context.WithCancel(context.Background())
	ring, err := dialback.Follow(fctx, etcdcluster.NewSecrets(n.cli, c.prefix))
	if err != nil {
		n.stop()
		n.cli.Close()
		ln.Close()
		return nil, err
	}
	if n.Registry, err = etcdcluster.NewRegistry(fctx, n.cli, etcdcluster.Options{Node: name, Prefix: c.prefix, TTL: o.TTL}); err != nil {
		n.stop()
		n.cli.Close()
		ln.Close()
		return nil, err
	}
	s := config.Default()
	if !o.NoRemote {
		for _, d := range o.Remotes {
			s.Address = append(s.Address, config.Address{Host: d, IP: remote.Addr(), Port: int(remote.Port())})
		}
	}
	n.s2s = s
	n.M, err = s2s.New(s2s.Config{
		S2S:     s,
		IsLocal: func(d string) bool { return d == o.Domain },
		Deliver: func(st s2s.Stanza) { n.Delivered <- st },
		Bounce:  func(b s2s.Bounce) { n.Bounced <- b },
		Logger:  o.Logger.With("node", name),
		Keys:    recordingKeys{node: name, ring: ring, log: c.Keys},
		Cluster: &s2s.Cluster{
			Registry: n.Registry,
			Forward:  c.forward,
		},
	})
	if err != nil {
		n.Registry.Close()
		n.stop()
		n.cli.Close()
		ln.Close()
		return nil, err
	}
	go n.M.Serve(ln)
	return n, nil
}

// ErrNodeDown is what Forward returns for a killed node.
var ErrNodeDown = errors.New("demo: node is down")

// forward is the hosts' routing between nodes: in a real deployment an RPC
// to the node, here a call of its Manager.
func (c *Cluster) forward(ctx context.Context, node string, s s2s.Stanza) error {
	for _, n := range c.Nodes {
		if n.Name != node {
			continue
		}
		if n.killed.Load() {
			return fmt.Errorf("%w: %s", ErrNodeDown, node)
		}
		return n.M.SendStanza(ctx, s)
	}
	return fmt.Errorf("%w: no node %s", ErrNodeDown, node)
}

// AddRemote tells every live node that domain listens at addr (an address
// override, applied with Reload). Call it before the nodes send to domain.
func (c *Cluster) AddRemote(domain string, addr netip.AddrPort) error {
	for _, n := range c.Nodes {
		if n.killed.Load() {
			continue
		}
		n.s2s.Address = append(n.s2s.Address, config.Address{Host: domain, IP: addr.Addr(), Port: int(addr.Port())})
		if err := n.M.Reload(n.s2s); err != nil {
			return err
		}
	}
	return nil
}

// Node returns the node of that name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Kill stops a node the way a crash does: its Manager closes at once and
// its etcd client goes away without revoking the lease, so its registry
// entries stay until the lease expires.
//
// The etcd client goes first, as when a machine loses power: nothing the
// Manager does while it closes (releasing its links) reaches etcd.
func (c *Cluster) Kill(n *Node) {
	n.killed.Store(true)
	n.stop()
	n.cli.Close()
	n.M.Close()
}

// WaitExpired waits until etcd holds no registry entry of node: the lease
// of a killed node ran out. It watches etcd; it does not poll.
func (c *Cluster) WaitExpired(ctx context.Context, node string) error {
	for {
		r, err := c.obs.Get(ctx, c.prefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		reg, err := c.entriesOf(ctx, node)
		if err != nil {
			return err
		}
		if reg == 0 {
			return nil
		}
		w := c.obs.Watch(ctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
		changed := false
		for resp := range w {
			if resp.Err() != nil {
				return resp.Err()
			}
			if len(resp.Events) > 0 {
				changed = true
				break
			}
		}
		if !changed {
			return ctx.Err()
		}
	}
}

// EntriesOf counts the registry entries of node, as a live node reads them.
func (c *Cluster) EntriesOf(ctx context.Context, node string) (int, error) {
	return c.entriesOf(ctx, node)
}

func (c *Cluster) entriesOf(ctx context.Context, node string) (int, error) {
	var reg *etcdcluster.Registry
	for _, n := range c.Nodes {
		if !n.killed.Load() {
			reg = n.Registry
			break
		}
	}
	if reg == nil {
		return 0, errors.New("demo: no live node")
	}
	es, err := reg.Entries(ctx)
	if err != nil {
		return 0, err
	}
	k := 0
	for _, e := range es {
		if e.Node == node {
			k++
		}
	}
	return k, nil
}

// Close stops everything.
func (c *Cluster) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		if n.killed.Load() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.M.Shutdown(ctx)
			n.Registry.Close()
			n.stop()
			n.cli.Close()
		}()
	}
	if c.Remote != nil && c.Remote.M != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.Remote.M.Shutdown(ctx) }()
	}
	wg.Wait()
	if c.Front != nil {
		c.Front.Close()
	}
	if c.obs != nil {
		c.obs.Close()
	}
	if c.Etcd != nil {
		c.Etcd.Close()
	}
}
