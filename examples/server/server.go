package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"

	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// server is the whole program: the client listener, the router and the
// Manager.
type server struct {
	log       *slog.Logger
	r         *router
	m         *s2s.Manager
	tls       *tls.Config
	maxStanza int

	ctx    context.Context // ends when the server shuts down
	cancel context.CancelFunc
	wg     sync.WaitGroup // serveClient goroutines

	mu       sync.Mutex
	clients  map[*client]*xmpp.Session
	stopping bool
}

// newServer builds the server for c; acc are its accounts. It opens no
// socket.
func newServer(c serverConfig, acc accounts, log *slog.Logger) (*server, error) {
	cert, err := starttls.LoadCertFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("certfile %s: %w", c.CertFile, err)
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		if roots, err = starttls.LoadRoots(c.CAFile); err != nil {
			return nil, err
		}
	}
	// The s2s streams present s2s.certfile, or server.certfile when the
	// section has none.
	var s2sCert starttls.CertSource
	if c.S2S.CertFile == "" {
		s2sCert = cert
	}
	s := &server{
		log:       log,
		r:         newRouter(log, c.Domains, acc),
		tls:       clientTLS(cert.Certificate),
		maxStanza: int(c.S2S.MaxStanzaSize),
		clients:   make(map[*client]*xmpp.Session),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.m, err = s2s.New(s2s.Config{
		S2S:         c.S2S,
		IsLocal:     s.r.isLocal,
		Deliver:     s.r.fromRemote,
		Bounce:      s.r.bounce,
		Logger:      log,
		RootCAs:     roots,
		Certificate: s2sCert,
	})
	if err != nil {
		return nil, err
	}
	s.r.m = s.m
	return s, nil
}

// serve accepts client connections on c2s and s2s streams on s2sLn until
// shutdown; it returns the first listener error, nil after shutdown.
func (s *server) serve(c2s, s2sLn net.Listener) error {
	errc := make(chan error, 2)
	go func() {
		err := s.m.Serve(s2sLn)
		if errors.Is(err, s2s.ErrClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		for {
			conn, err := c2s.Accept()
			if err != nil {
				if s.ctx.Err() != nil {
					err = nil
				}
				errc <- err
				return
			}
			s.wg.Add(1)
			go s.serveClient(conn)
		}
	}()
	go func() {
		<-s.ctx.Done()
		c2s.Close()
	}()
	err := <-errc
	if err != nil {
		return err
	}
	return <-errc
}

// track records a bound session, so that shutdown can end it; false once
// shutdown began.
func (s *server) track(c *client, sess *xmpp.Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.clients[c] = sess
	return true
}

func (s *server) untrack(c *client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
}

// shutdown ends client sessions with system-shutdown, then shuts the
// Manager down (its queues drain, or bounce when ctx ends first).
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	sessions := make([]*xmpp.Session, 0, len(s.clients))
	for _, sess := range s.clients {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.cancel()
	for _, sess := range sessions {
		s.streamError(sess, stream.SystemShutdown)
		sess.Conn().Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return s.m.Shutdown(ctx)
}
