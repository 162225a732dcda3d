package etcdcluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/etcdcluster/internal/demo"
	"github.com/xmpp-s2s/federation/internal/interop"
	"github.com/xmpp-s2s/federation/s2s"
)

// TestClusterProsody is the cluster test with a real remote server: Prosody
// (Debian's package, started on loopback by the interop harness; under
// CI=true a missing Prosody fails the test) reaches cluster.test only
// through the front. It verifies node1's key through another node, answers
// pings both ways through whichever node its stream landed on, keeps
// verifying across a rotation, and after node1 is killed, a new link from
// node2, with a key from the rotated secret, is verified too.
func TestClusterProsody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
	defer cancel()
	c, err := demo.Start(ctx, demo.Options{NoRemote: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fa := c.Front.Addr()
	p := interop.StartProsody(t, interop.ProsodyConfig{
		Domain: "prosody.test",
		TLS:    "false",
		Routes: []interop.Route{{Domain: "cluster.test", Host: "127.0.0.1", Port: fa.Port}},
	})
	if err := c.AddRemote("prosody.test", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.Port))); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Nodes[0], c.Nodes[1]

	// pong waits for Prosody's answer to ping id, on whichever node
	// Prosody's stream to cluster.test landed.
	pong := func(n *demo.Node, id string) string {
		t.Helper()
		raw := fmt.Sprintf(`<iq type='get' id='%s' from='cluster.test' to='prosody.test'><ping xmlns='urn:xmpp:ping'/></iq>`, id)
		if err := n.M.Send(ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		for {
			var s s2s.Stanza
			var at string
			select {
			case s = <-c.Nodes[0].Delivered:
				at = "node1"
			case s = <-c.Nodes[1].Delivered:
				at = "node2"
			case s = <-c.Nodes[2].Delivered:
				at = "node3"
			case b := <-n.Bounced:
				t.Fatalf("%s bounced %s: %s: %s\nProsody's log:\n%s", n.Name, b.Stanza.ID, b.Condition, b.Text, p.Log())
			case <-ctx.Done():
				t.Fatalf("no pong for %s\nProsody's log:\n%s", id, p.Log())
			}
			if s.ID == id && s.Type == "result" {
				return at
			}
			t.Logf("%s delivered %s", at, s.Raw)
		}
	}
	verifiedElsewhere := func(maker string) {
		t.Helper()
		for _, ch := range c.Keys.Checks() {
			if !ch.Valid {
				t.Fatalf("a check failed: %+v", ch)
			}
			if ch.MadeBy == maker && ch.CheckedBy != maker {
				t.Logf("%s's key was verified by %s", maker, ch.CheckedBy)
				return
			}
		}
		t.Fatalf("Prosody verified no key of %s on another node: %+v (front: %v)", maker, c.Keys.Checks(), c.Front.Conns())
	}

	at := pong(n1, "p1")
	t.Logf("Prosody's answer came in on %s", at)
	verifiedElsewhere("node1")
	// node2 has no link of its own: its ping goes out over node1's.
	pong(n2, "p2")
	if own := outLinks(n2.M.Links()); len(own) != 0 {
		t.Fatalf("node2 opened links of its own: %v", own)
	}

	g, err := c.Secrets.Rotate(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotated to version %d", g.Version)

	c.Kill(n1)
	if k, err := c.EntriesOf(ctx, "node1"); err != nil || k == 0 {
		t.Fatalf("node1's entries right after the kill: %d, %v", k, err)
	}
	if err := c.WaitExpired(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	// node2 links anew with a key from the rotated secret; Prosody
	// verifies it through the front, on a live node.
	pong(n2, "p3")
	if own := outLinks(n2.M.Links()); len(own) != 1 || own[0] != "prosody.test" {
		t.Fatalf("node2's links after the takeover: %v", own)
	}
	for _, ch := range c.Keys.Checks() {
		if !ch.Valid {
			t.Fatalf("a check failed: %+v", ch)
		}
	}
	if checks := c.Keys.Checks(); checks[len(checks)-1].MadeBy != "node2" {
		t.Fatalf("the last key verified was not node2's: %+v", checks)
	}
}
