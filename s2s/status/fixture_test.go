package status_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/internal/testnet"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/s2stest"
	"github.com/xmpp-s2s/federation/s2s/status"
	"github.com/xmpp-s2s/federation/starttls"
)

// fixture is a host Manager with one link up to a stub (remote.example)
// and one failed attempt (down.example refuses connections), its status
// page mounted at /s2s/ of a test HTTP server, and /s2s/metrics beside it.
type fixture struct {
	srv  *httptest.Server
	page *status.Handler
	m    *s2s.Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stub := s2stest.NewServer(t, "remote.example",
		s2stest.WithStartTLS("required_trusted"),
		s2stest.WithPeer("host.example", ln.Addr().(*net.TCPAddr).AddrPort()))
	cfg := config.Default()
	cfg.UseStartTLS = "required_trusted"
	down := testnet.RefusedAddr(t)
	cfg.Address = append(cfg.Address, stub.Address(),
		config.Address{Host: "down.example", IP: down.Addr(), Port: int(down.Port())})
	cert := starttls.StaticCert(stub.IssueCertificate("host.example"))

	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# the host's metrics handler\n")
	})
	page := status.New(status.Options{
		Locals:  []string{"host.example"},
		Metrics: metrics,
		Diagnose: func(ctx context.Context, local, remote string) (*diagnose.Report, error) {
			return diagnose.Run(ctx, diagnose.Config{S2S: cfg, RootCAs: stub.RootCAs(), Certificate: cert, Timeout: 5 * time.Second}, local, remote)
		},
	})
	events := make(chan s2s.Event, 64)
	m, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "host.example" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(s2s.Bounce) {},
		Observer: func(e s2s.Event) {
			page.Observe(e)
			select {
			case events <- e:
			default:
			}
		},
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     stub.RootCAs(),
		Certificate: cert,
	})
	if err != nil {
		t.Fatal(err)
	}
	page.Attach(m.Links)
	go m.Serve(ln)
	t.Cleanup(func() { m.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.Send(ctx, []byte(`<message from='a@host.example' to='b@remote.example' id='m1'><body>hi</body></message>`))
	if _, err := stub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	m.Send(ctx, []byte(`<message from='a@host.example' to='b@down.example' id='m2'><body>hi</body></message>`))
	// Wait for the bounce, which comes after the failure event.
	for done := false; !done; {
		select {
		case e := <-events:
			done = e.Kind == s2s.Bounced
		case <-ctx.Done():
			t.Fatal("no bounce from down.example")
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/s2s/", http.StripPrefix("/s2s", page))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, page: page, m: m}
}
