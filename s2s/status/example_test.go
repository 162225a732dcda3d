package status_test

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/metrics"
	"github.com/xmpp-s2s/federation/s2s/status"
)

// A host mounts the page under /s2s/ with the metrics beside it, feeds both
// from its Manager's Observer and lets the form diagnose with the Manager's
// own configuration.
func Example() {
	cfg := config.Default()
	col := metrics.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	page := status.New(status.Options{
		Locals:  []string{"example.org"},
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Diagnose: func(ctx context.Context, local, remote string) (*diagnose.Report, error) {
			return diagnose.Run(ctx, diagnose.Config{S2S: cfg}, local, remote)
		},
	})
	m, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "example.org" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(s2s.Bounce) {},
		Observer: func(e s2s.Event) {
			col.Observe(e)
			page.Observe(e)
		},
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	col.Attach(m.Links)
	page.Attach(m.Links)

	http.Handle("/s2s/", http.StripPrefix("/s2s", page))
}
