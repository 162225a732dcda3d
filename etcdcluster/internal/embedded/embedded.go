// Package embedded starts a one-member etcd server inside the process, on
// loopback ports the kernel picks, for the adapter's tests and its example:
// a real etcd (go.etcd.io/etcd/server/v3/embed), not a stand-in.
package embedded

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
	dir  string
	// Endpoints are the client URLs to give to clientv3.Config.
	Endpoints []string
}

// Start starts etcd with its data in a new temporary directory, removed by
// Close. It returns once the server serves clients, or fails after timeout.
func Start(timeout time.Duration) (*Server, error) {
	dir, err := os.MkdirTemp("", "etcdcluster-")
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "embedded"
	// Port 0 everywhere: the kernel picks free loopback ports, so tests
	// running side by side never collide. A one-member cluster never
	// dials its peer URL, so its port 0 is never resolved.
	lc, _ := url.Parse("http://127.0.0.1:0")
	lp, _ := url.Parse("http://127.0.0.1:0")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*lc}, []url.URL{*lc}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*lp}, []url.URL{*lp}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// etcd's own logs (zap) would drown the tests' output, down to the
	// errors it logs for its own listeners closing on Close.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(timeout):
		e.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded etcd: not ready after %s", timeout)
	}
	s := &Server{etcd: e, dir: dir}
	for _, l := range e.Clients {
		s.Endpoints = append(s.Endpoints, "http://"+l.Addr().String())
	}
	return s, nil
}

// Client returns a new client of the server; the caller closes it.
func (s *Server) Client(ctx context.Context) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints,
		DialTimeout: 10 * time.Second,
		Context:     ctx,
		// Its warnings (a call cancelled at shutdown) are the caller's
		// errors already.
		Logger: zap.NewNop(),
	})
}

// Close stops the server and removes its data.
func (s *Server) Close() {
	s.etcd.Close()
	os.RemoveAll(s.dir)
}
