package metrics_test

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/metrics"
)

// A host creates the Collector before its Manager, so that the Manager's
// Observer feeds it from the first event, attaches the Manager's Links for
// the gauges, and serves its registry on /metrics.
func Example() {
	col := metrics.New()
	m, err := s2s.New(s2s.Config{
		S2S:      config.Default(),
		IsLocal:  func(d string) bool { return d == "example.org" },
		Deliver:  func(s2s.Stanza) {},
		Bounce:   func(s2s.Bounce) {},
		Observer: col.Observe,
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	col.Attach(m.Links)

	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}
