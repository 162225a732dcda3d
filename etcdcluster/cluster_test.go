package etcdcluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/etcdcluster/internal/demo"
	"github.com/xmpp-s2s/federation/s2s"
)

const wait = 60 * time.Second

// testLogger shows the Managers' logs with -v, or when asked with
// ETCDCLUSTER_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("ETCDCLUSTER_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// TestClusterEndToEnd: three nodes serving cluster.test behind one address,
// one etcd, a remote server reaching cluster.test only through that address.
func TestClusterEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
	defer cancel()
	remotes := []string{"remote.test"}
	for i := 1; i <= 12; i++ {
		remotes = append(remotes, fmt.Sprintf("r%d.test", i))
	}
	c, err := demo.Start(ctx, demo.Options{Remotes: remotes, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	nothingBounced := func() {
		t.Helper()
		for _, ch := range []chan s2s.Bounce{n1.Bounced, n2.Bounced, n3.Bounced, c.Remote.Bounced} {
			select {
			case b := <-ch:
				t.Fatalf("bounced: %s %s -> %s: %s: %s", b.Stanza.ID, b.Stanza.From, b.Stanza.To, b.Condition, b.Text)
			default:
			}
		}
	}
	toRemote := func(ids ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, id := range ids {
			want[id] = true
		}
		for len(want) > 0 {
			select {
			case s := <-c.Remote.Delivered:
				if !want[s.ID] {
					t.Fatalf("remote got %q, waiting for %v", s.ID, want)
				}
				delete(want, s.ID)
			case b := <-n1.Bounced:
				t.Fatalf("node1 bounced %s: %s: %s", b.Stanza.ID, b.Condition, b.Text)
			case b := <-n2.Bounced:
				t.Fatalf("node2 bounced %s: %s: %s", b.Stanza.ID, b.Condition, b.Text)
			case b := <-n3.Bounced:
				t.Fatalf("node3 bounced %s: %s: %s", b.Stanza.ID, b.Condition, b.Text)
			case <-ctx.Done():
				t.Fatalf("remote still waits for %v", want)
			}
		}
	}
	toCluster := func(id string) string {
		t.Helper()
		select {
		case s := <-n1.Delivered:
			return check(t, s, id, "node1")
		case s := <-n2.Delivered:
			return check(t, s, id, "node2")
		case s := <-n3.Delivered:
			return check(t, s, id, "node3")
		case b := <-c.Remote.Bounced:
			t.Fatalf("remote bounced %s: %s: %s", b.Stanza.ID, b.Condition, b.Text)
		case <-ctx.Done():
			t.Fatalf("%s never reached the cluster", id)
		}
		return ""
	}

	// 1. node1 links to remote.test; the remote verifies node1's key by
	// connecting to cluster.test, which the front hands to another node.
	send(t, n1.M, "a@cluster.test", "b@remote.test", "first")
	toRemote("first")
	verified := false
	for _, ch := range c.Keys.Checks() {
		if !ch.Valid {
			t.Fatalf("a check failed: %+v", ch)
		}
		if ch.MadeBy == "node1" && ch.CheckedBy != "node1" {
			verified = true
			t.Logf("node1's key for %s was verified by %s", ch.Receiving, ch.CheckedBy)
		}
	}
	if !verified {
		t.Fatalf("no key of node1 was verified by another node: %+v (front: %v)", c.Keys.Checks(), c.Front.Conns())
	}

	// 2. Stanzas both ways, through any node: node2 and node3 forward to
	// node1, which holds the link; the remote's stream lands on some node.
	send(t, n2.M, "a@cluster.test", "b@remote.test", "via-node2")
	toRemote("via-node2")
	send(t, n3.M, "a@cluster.test", "b@remote.test", "via-node3")
	toRemote("via-node3")
	for _, n := range []*demo.Node{n2, n3} {
		if own := outLinks(n.M.Links()); len(own) != 0 {
			t.Fatalf("%s opened its own links: %v", n.Name, own)
		}
	}
	send(t, c.Remote.M, "b@remote.test", "a@cluster.test", "back")
	inNode := toCluster("back")
	t.Logf("the remote's stream to cluster.test landed on %s", inNode)
	links, err := n3.M.ClusterLinks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(links, func(l s2s.LinkInfo) bool {
		return l.Node == "node1" && l.Direction == s2s.Outgoing && l.Remote == "remote.test"
	}) || !slices.ContainsFunc(links, func(l s2s.LinkInfo) bool {
		return l.Node == inNode && l.Direction == s2s.Incoming && l.Remote == "remote.test"
	}) {
		t.Fatalf("node3's ClusterLinks misses node1's link or %s's incoming stream: %+v", inNode, links)
	}

	// 3. The secret rotates while new links authenticate: each node links
	// to new remote domains, four rotations follow each other while those
	// links are being set up, and every key is accepted wherever it is
	// checked, including keys made several rotations before their check
	// (a generation keeps each retired secret until its grace ends).
	var ids []string
	for i := 1; i <= 12; i++ {
		n := c.Nodes[i%3]
		id := fmt.Sprintf("rot-%d", i)
		ids = append(ids, id)
		send(t, n.M, "a@cluster.test", fmt.Sprintf("b@r%d.test", i), id)
		if i%3 == 0 {
			g, err := c.Secrets.Rotate(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rotated to version %d", g.Version)
		}
	}
	toRemote(ids...)
	nothingBounced()
	for _, ch := range c.Keys.Checks() {
		if !ch.Valid {
			t.Fatalf("a key was refused during the rotation: %+v", ch)
		}
	}
	if g, err := c.Secrets.Secrets(ctx); err != nil || g.Version != 5 {
		t.Fatalf("after four rotations: version %d, %v", g.Version, err)
	}

	// 4. node1 dies without a word: its entries expire with its lease,
	// and node2 links to remote.test itself.
	c.Kill(n1)
	// Nothing was released: the entries are there until the lease ends.
	if k, err := c.EntriesOf(ctx, "node1"); err != nil || k == 0 {
		t.Fatalf("node1's entries right after the kill: %d, %v", k, err)
	}
	if err := c.WaitExpired(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	links, err = n2.M.ClusterLinks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Node == "node1" {
			t.Fatalf("node1's entry outlived its lease: %+v", l)
		}
	}
	send(t, n2.M, "a@cluster.test", "b@remote.test", "after-kill")
	toRemote("after-kill")
	if own := outLinks(n2.M.Links()); !slices.Contains(own, "remote.test") {
		t.Fatalf("node2 did not take the link over: %v", own)
	}
	// The remote's stream to node1 (if it was there) ended; its next
	// stanza reaches a live node through the front.
	if inNode == "node1" {
		for l := range c.Remote.LinkDowns {
			if l.Direction == s2s.Outgoing && l.Remote == "cluster.test" {
				break
			}
		}
	}
	send(t, c.Remote.M, "b@remote.test", "a@cluster.test", "back-after-kill")
	if got := toCluster("back-after-kill"); got == "node1" {
		t.Fatal("delivered by the dead node")
	}
	nothingBounced()
}

func check(t *testing.T, s s2s.Stanza, id, node string) string {
	t.Helper()
	if s.ID != id {
		t.Fatalf("%s delivered %q, want %q", node, s.ID, id)
	}
	return node
}

func send(t *testing.T, m *s2s.Manager, from, to, id string) {
	t.Helper()
	raw := fmt.Sprintf(`<message from='%s' to='%s' id='%s'><body>%s</body></message>`, from, to, id, id)
	if err := m.Send(context.Background(), []byte(raw)); err != nil {
		t.Fatal(err)
	}
}

// outLinks lists the remote domains of a node's own outgoing links.
func outLinks(links []s2s.LinkInfo) []string {
	var out []string
	for _, l := range links {
		if l.Direction == s2s.Outgoing {
			out = append(out, l.Remote)
		}
	}
	return out
}
