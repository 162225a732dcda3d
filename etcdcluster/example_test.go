package etcdcluster_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/etcdcluster"
	"github.com/xmpp-s2s/federation/s2s"
)

// One node of a cluster: the dialback secret and the link registry on
// etcd. (examples/cluster runs three such nodes against an embedded etcd.)
func Example() {
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	// Every node makes and accepts the same keys, across rotations.
	keys, err := dialback.Follow(ctx, etcdcluster.NewSecrets(cli, ""))
	if err != nil {
		log.Fatal(err)
	}
	// This node's links, under a lease that ends when the node dies.
	reg, err := etcdcluster.NewRegistry(ctx, cli, etcdcluster.Options{Node: "node-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	m, err := s2s.New(s2s.Config{
		S2S:     config.Default(),
		IsLocal: func(d string) bool { return d == "example.org" },
		Deliver: func(s s2s.Stanza) { /* to the local user */ },
		Bounce:  func(b s2s.Bounce) { /* back to the sender */ },
		Keys:    keys,
		Cluster: &s2s.Cluster{
			Registry:          reg,
			MaxLinksPerRemote: 4,
			Forward: func(ctx context.Context, node string, s s2s.Stanza) error {
				// The host's own RPC to that node, which calls its
				// Manager's SendStanza.
				return nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
}

// Rotating the secret: new keys use the new one at once, and keys made with
// the old one are still accepted for an hour.
func ExampleSecrets_Rotate() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	g, err := etcdcluster.NewSecrets(cli, "").Rotate(context.Background(), time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	log.Println("now at", g) // prints the version, never the secret
}
