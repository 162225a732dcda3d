// Package etcdcluster keeps what the nodes of a federation cluster share on
// etcd: the dialback secret, with rotation ([Secrets], a
// dialback.SecretSource), and the link registry ([Registry], an
// s2s.Registry), each node's entries under a lease of its own so that they
// expire when the node dies.
//
// It is a Go module of its own (github.com/xmpp-s2s/federation/etcdcluster),
// so that a host importing the federation library does not pull etcd's
// client unless it uses this adapter.
//
// Layout under the prefix given to New (by default "/federation/"):
//
//	secret                      the dialback secrets, JSON; created once, replaced by Rotate
//	out/<remote>/<local>        the node holding that outgoing link (under its lease)
//	in/<node>/<local>/<remote>  an incoming pair on that node (under its lease)
//
// A host wires one node like this:
//
//	cli, _ := clientv3.New(clientv3.Config{Endpoints: endpoints})
//	secrets := etcdcluster.NewSecrets(cli, "")
//	keys, _ := dialback.Follow(ctx, secrets)           // Config.Keys
//	reg, _ := etcdcluster.NewRegistry(ctx, cli, etcdcluster.Options{Node: "node-1"})
//	defer reg.Close()                                   // its entries go at once
//	m, _ := s2s.New(s2s.Config{ /* … */ Keys: keys,
//		Cluster: &s2s.Cluster{Registry: reg, Forward: routeToNode}})
package etcdcluster
