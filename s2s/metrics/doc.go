// Package metrics turns an s2s.Manager's events into Prometheus metrics: a
// prometheus.Collector the host registers with its own registry. It lives
// apart from s2s so that a host that imports s2s alone pulls in no metrics
// library.
//
//	col := metrics.New()
//	m, err := s2s.New(s2s.Config{ /* … */ Observer: col.Observe})
//	col.Attach(m.Links)          // gauges are read from the Manager at scrape time
//	prometheus.MustRegister(col)
//	http.Handle("/metrics", promhttp.Handler())
//
// # Metrics
//
// Counters, from the Manager's events:
//
//	xmpp_s2s_links_opened_total{direction, auth}     pairs authenticated
//	xmpp_s2s_links_closed_total{direction, reason}   links ended: closed, idle, peer_closed, shutdown, keepalive, timeout, error
//	xmpp_s2s_link_failures_total{direction, step}    failed attempts: policy, dns, connect, stream, tls, auth, other
//	xmpp_s2s_stanzas_total{direction}                stanzas delivered (in) and written (out)
//	xmpp_s2s_stanza_bytes_total{direction}           their bytes
//	xmpp_s2s_bounces_total{condition}                stanzas handed back, by XMPP error condition
//	xmpp_s2s_stanzas_resent_total                    stanzas written again after their stream died unacknowledged
//	xmpp_s2s_tls_resumed_total{direction}            pairs authenticated on a stream whose TLS session was resumed
//
// A histogram:
//
//	xmpp_s2s_link_setup_seconds{direction}           start of an attempt to authentication
//
// Gauges, read from the attached Manager's Links at each scrape:
//
//	xmpp_s2s_links{direction, tls, auth}             authenticated pairs now
//	xmpp_s2s_queued_stanzas                          stanzas waiting on outgoing links
//	xmpp_s2s_unacked_stanzas                         stanzas written and not yet acknowledged (XEP-0198)
//
// Label values are few and fixed (domains are not labels: a server talks to
// thousands of them, and a label per domain would make as many series);
// the status page (package status) shows the links per domain. The step
// label uses s2s.Step's names, the words bounce reasons use. The
// "keepalive" reason is a link whose peer stopped answering
// (s2s.ErrKeepAlive): a half-open connection or a hung peer, which a rising
// count of points at the network between the servers. A resent stanza
// may reach the peer twice (the first copy was lost with its stream, or
// handled and not acknowledged): stanzas_resent_total over stanzas_total
// is the duplicate rate a peer may see. tls_resumed_total over
// links_opened_total is the share of links that skipped a full TLS
// handshake (s2s.Config.DisableTLSResumption): a drop after a restart is
// expected, since session tickets are sealed with keys held in memory.
//
// For comparison: Prosody's mod_s2s (its current source) exports gauges of
// connections by direction (prosody_mod_s2s__connections_inbound and
// _outbound, labelled by host, session type and IP family) and counters of
// initiated, authenticated (by direction and mechanism), encrypted (by
// protocol and cipher) and closed (by error) connections; MongooseIM
// counts s2s elements in and out and their sizes. The names here follow
// the same split (a gauge of what is open, counters of what happened,
// direction as a label) in Prometheus' conventions: a namespace prefix,
// base units (seconds, bytes), _total on counters. What neither peer
// exports is why an attempt failed, which is the first question an
// operator asks: that is the step label.
package metrics
