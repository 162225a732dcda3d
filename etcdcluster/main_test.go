package etcdcluster

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmpp-s2s/federation/etcdcluster/internal/embedded"
)

// etcd is the one real etcd the tests of this package share; each test
// works under a prefix of its own.
var etcd *embedded.Server

func TestMain(m *testing.M) {
	s, err := embedded.Start(2 * time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	etcd = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

var prefixes atomic.Int64

// prefix returns a key prefix no other test uses.
func prefix() string { return fmt.Sprintf("/test-%d/", prefixes.Add(1)) }

// client returns a new client of the shared etcd, closed when the test ends.
func client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := etcd.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wait bounds every wait in these tests.
const wait = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}
