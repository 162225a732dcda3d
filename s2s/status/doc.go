// Package status is an http.Handler a host mounts, as it would
// net/http/pprof, to see its s2s links: the authenticated links (direction,
// domains, TLS, authentication, since when, the connection that carries
// it, stream management, stanzas, queue, unacknowledged and resent), the latest
// failures with their reasons, and a form that runs the diagnosis (package
// diagnose) for one domain pair. The pages are plain HTML made on the
// server: no JavaScript, nothing to build.
//
//	page := status.New(status.Options{Metrics: promhttp.Handler()})
//	m, err := s2s.New(s2s.Config{ /* … */ Observer: page.Observe})
//	page.Attach(m.Links)
//	http.Handle("/s2s/", http.StripPrefix("/s2s", page))
//
// Under its mount point the Handler serves "/" (links and failures),
// "/diagnose" (the form and its report) and, when Options.Metrics is set,
// "/metrics" beside them.
//
// The page shows domain names and failure reasons: mount it where only
// operators reach it. It never shows secrets.
package status
