// Command cluster runs a federation cluster on loopback and tells its story:
// an embedded etcd, three nodes serving cluster.test behind one round-robin
// address, and a remote server (remote.test, r1.test) that reaches
// cluster.test only through that address. It prints which node verified
// which node's dialback key, rotates the shared secret between two links,
// then kills a node and shows another node taking its link over once the
// dead node's registry entries expired. It exits 0 when every step
// happened as described, 1 otherwise.
//
//	cd etcdcluster && go run ./examples/cluster
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/xmpp-s2s/federation/etcdcluster/internal/demo"
	"github.com/xmpp-s2s/federation/s2s"
)

func main() {
	verbose := flag.Bool("v", false, "print the Managers' logs")
	flag.Parse()
	if err := run(*verbose); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(verbose bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log *slog.Logger
	if verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c, err := demo.Start(ctx, demo.Options{Remotes: []string{"remote.test", "r1.test"}, Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("etcd at %s\n", c.Etcd.Endpoints[0])
	fmt.Printf("cluster.test at %s, round robin over node1, node2, node3\n", c.Front.Addr())

	seen := 0
	report := func() error {
		checks := c.Keys.Checks()
		for _, ch := range checks[seen:] {
			if !ch.Valid {
				return fmt.Errorf("%s refused a key made by %s", ch.CheckedBy, ch.MadeBy)
			}
			fmt.Printf("  key made by %s for %s, verified by %s\n", ch.MadeBy, ch.Receiving, ch.CheckedBy)
		}
		seen = len(checks)
		return nil
	}

	n1, n2 := c.Nodes[0], c.Nodes[1]
	fmt.Println("node1 sends to remote.test:")
	if err := deliver(ctx, c, n1, "remote.test", "hello"); err != nil {
		return err
	}
	if err := report(); err != nil {
		return err
	}

	fmt.Println("node2 sends to remote.test (node1 holds that link, so node2 forwards to it):")
	if err := deliver(ctx, c, n2, "remote.test", "forwarded"); err != nil {
		return err
	}
	if own := outgoing(n2.M.Links()); len(own) != 0 {
		return fmt.Errorf("node2 opened links of its own: %v", own)
	}

	g, err := c.Secrets.Rotate(ctx, time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("secret rotated to version %d (the previous one accepted for a minute)\n", g.Version)
	fmt.Println("node2 sends to r1.test:")
	if err := deliver(ctx, c, n2, "r1.test", "after-rotation"); err != nil {
		return err
	}
	if err := report(); err != nil {
		return err
	}

	fmt.Println("remote.test sends to cluster.test:")
	raw := `<message from='b@remote.test' to='a@cluster.test' id='back'><body>back</body></message>`
	if err := c.Remote.M.Send(ctx, []byte(raw)); err != nil {
		return err
	}
	select {
	case <-n1.Delivered:
		fmt.Println("  node1 received \"back\"")
	case <-n2.Delivered:
		fmt.Println("  node2 received \"back\"")
	case <-c.Nodes[2].Delivered:
		fmt.Println("  node3 received \"back\"")
	case b := <-c.Remote.Bounced:
		return fmt.Errorf("remote bounced %q: %s: %s", b.Stanza.ID, b.Condition, b.Text)
	case <-ctx.Done():
		return errors.New("the cluster never received \"back\"")
	}
	if err := report(); err != nil {
		return err
	}

	fmt.Println("node1 is killed (no clean shutdown: its lease must run out)")
	start := time.Now()
	c.Kill(n1)
	k, err := c.EntriesOf(ctx, "node1")
	if err != nil {
		return err
	}
	fmt.Printf("  node1 still has %d registry entries\n", k)
	if err := c.WaitExpired(ctx, "node1"); err != nil {
		return err
	}
	fmt.Printf("node1's registry entries expired after %s\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Println("node2 sends to remote.test:")
	if err := deliver(ctx, c, n2, "remote.test", "takeover"); err != nil {
		return err
	}
	if own := outgoing(n2.M.Links()); !slices.Contains(own, "remote.test") {
		return errors.New("node2 did not take the link to remote.test over")
	}
	fmt.Println("  node2 took over the link cluster.test -> remote.test")
	if err := report(); err != nil {
		return err
	}

	links, err := n2.M.ClusterLinks(ctx)
	if err != nil {
		return err
	}
	fmt.Println("the cluster's links, as node2 sees them:")
	for _, l := range links {
		fmt.Printf("  %s %-3s %s -> %s\n", l.Node, l.Direction, l.Local, l.Remote)
	}
	return nil
}

// deliver sends one message from node to the remote domain and waits for
// the remote server to receive it.
func deliver(ctx context.Context, c *demo.Cluster, n *demo.Node, remote, id string) error {
	raw := fmt.Sprintf(`<message from='a@cluster.test' to='b@%s' id='%s'><body>%s</body></message>`, remote, id, id)
	if err := n.M.Send(ctx, []byte(raw)); err != nil {
		return err
	}
	for {
		select {
		case s := <-c.Remote.Delivered:
			if s.ID == id {
				fmt.Printf("  remote received %q\n", id)
				return nil
			}
		case b := <-n.Bounced:
			return fmt.Errorf("%s bounced %q: %s: %s", n.Name, b.Stanza.ID, b.Condition, b.Text)
		case <-ctx.Done():
			return fmt.Errorf("%q never arrived", id)
		}
	}
}

func outgoing(links []s2s.LinkInfo) []string {
	var out []string
	for _, l := range links {
		if l.Direction == s2s.Outgoing {
			out = append(out, l.Remote)
		}
	}
	return out
}
