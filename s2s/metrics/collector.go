package metrics

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmpp-s2s/federation/s2s"
)

const namespace = "xmpp_s2s"

// Collector is a prometheus.Collector of one Manager's metrics. Feed it
// events with Observe (the Manager's Observer) and give it the Manager's
// Links with Attach for the gauges. It is safe for concurrent use.
type Collector struct {
	opened   *prometheus.CounterVec
	closed   *prometheus.CounterVec
	failures *prometheus.CounterVec
	stanzas  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	bounces  *prometheus.CounterVec
	resent   prometheus.Counter
	resumed  *prometheus.CounterVec
	setup    *prometheus.HistogramVec

	linksDesc   *prometheus.Desc
	queuedDesc  *prometheus.Desc
	unackedDesc *prometheus.Desc

	links atomic.Pointer[func() []s2s.LinkInfo]
}

// SetupBuckets are the bounds, in seconds, of the link setup histogram:
// from a loopback link (milliseconds) to one that waits out
// outgoing.connection_timeout's default of 10 s and more.
var SetupBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New returns a Collector with every counter at zero.
func New() *Collector {
	c := &Collector{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "links_opened_total",
			Help: "Domain pairs authenticated, by direction and authentication method.",
		}, []string{"direction", "auth"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "links_closed_total",
			Help: "Links that ended, by direction and reason (closed, idle, peer_closed, shutdown, keepalive, timeout, error).",
		}, []string{"direction", "reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "link_failures_total",
			Help: "Link attempts that failed, by direction and the step that failed (policy, dns, connect, stream, tls, auth, other).",
		}, []string{"direction", "step"}),
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "stanzas_total",
			Help: "Stanzas delivered to the host (in) and written to remote servers (out).",
		}, []string{"direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "stanza_bytes_total",
			Help: "Bytes of the stanzas counted by xmpp_s2s_stanzas_total.",
		}, []string{"direction"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bounces_total",
			Help: "Stanzas handed back to the host unsent, by XMPP error condition.",
		}, []string{"condition"}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "stanzas_resent_total",
			Help: "Stanzas written a second time, on a new stream, because the stream that carried them died before the peer acknowledged them (XEP-0198); each is in stanzas_total{direction=\"out\"} twice.",
		}),
		resumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_resumed_total",
			Help: "Domain pairs authenticated on a stream whose TLS handshake resumed an earlier session instead of a full handshake, by direction; of the links in xmpp_s2s_links_opened_total.",
		}, []string{"direction"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "link_setup_seconds",
			Help:    "Time from the start of a link attempt to its authentication.",
			Buckets: SetupBuckets,
		}, []string{"direction"}),
		linksDesc: prometheus.NewDesc(namespace+"_links",
			"Authenticated domain pairs now, by direction, TLS version and authentication method.",
			[]string{"direction", "tls", "auth"}, nil),
		queuedDesc: prometheus.NewDesc(namespace+"_queued_stanzas",
			"Stanzas waiting to be written on outgoing links.", nil, nil),
		unackedDesc: prometheus.NewDesc(namespace+"_unacked_stanzas",
			"Stanzas written on outgoing links with stream management (XEP-0198) that the peer has not acknowledged yet.", nil, nil),
	}
	// Series that a dashboard compares against each other exist from the
	// start, at zero, rather than appearing with their first event.
	for _, d := range []s2s.Direction{s2s.Outgoing, s2s.Incoming} {
		c.stanzas.WithLabelValues(d.String())
		c.bytes.WithLabelValues(d.String())
		c.resumed.WithLabelValues(d.String())
	}
	for _, st := range s2s.Steps {
		c.failures.WithLabelValues(s2s.Outgoing.String(), string(st))
	}
	return c
}

// Attach gives the Collector the source of its gauges, normally a Manager's
// Links method. It is read at every scrape; before Attach the gauges are
// not reported.
func (c *Collector) Attach(links func() []s2s.LinkInfo) {
	c.links.Store(&links)
}

// Observe counts one event. It is an s2s.Observer: set it as
// s2s.Config.Observer, or call it from an Observer of your own.
func (c *Collector) Observe(e s2s.Event) {
	switch e.Kind {
	case s2s.LinkUp:
		dir := e.Link.Direction.String()
		c.opened.WithLabelValues(dir, authLabel(e.Link.Auth)).Inc()
		if e.Link.TLSResumed {
			c.resumed.WithLabelValues(dir).Inc()
		}
		c.setup.WithLabelValues(dir).Observe(e.Setup.Seconds())
	case s2s.LinkDown:
		c.closed.WithLabelValues(e.Link.Direction.String(), closeReason(e.Err)).Inc()
	case s2s.AuthFailed, s2s.LinkFailed:
		c.failures.WithLabelValues(e.Link.Direction.String(), stepLabel(e.Err)).Inc()
	case s2s.Bounced:
		c.bounces.WithLabelValues(string(e.Bounce.Condition)).Inc()
	case s2s.StanzaIn, s2s.StanzaOut:
		dir := "in"
		if e.Kind == s2s.StanzaOut {
			dir = "out"
		}
		c.stanzas.WithLabelValues(dir).Inc()
		c.bytes.WithLabelValues(dir).Add(float64(e.Bytes))
		if e.Resent {
			c.resent.Inc()
		}
	}
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.opened.Describe(ch)
	c.closed.Describe(ch)
	c.failures.Describe(ch)
	c.stanzas.Describe(ch)
	c.bytes.Describe(ch)
	c.bounces.Describe(ch)
	c.resent.Describe(ch)
	c.resumed.Describe(ch)
	c.setup.Describe(ch)
	ch <- c.linksDesc
	ch <- c.queuedDesc
	ch <- c.unackedDesc
}

// Collect sends the current values; the gauges come from the attached
// Links.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.opened.Collect(ch)
	c.closed.Collect(ch)
	c.failures.Collect(ch)
	c.stanzas.Collect(ch)
	c.bytes.Collect(ch)
	c.bounces.Collect(ch)
	c.resent.Collect(ch)
	c.resumed.Collect(ch)
	c.setup.Collect(ch)
	src := c.links.Load()
	if src == nil {
		return
	}
	type key struct{ dir, tls, auth string }
	counts := make(map[key]int)
	queued, unacked := 0, 0
	for _, l := range (*src)() {
		counts[key{l.Direction.String(), l.TLS(), authLabel(l.Auth)}]++
		queued += l.Queued
		unacked += l.Unacked
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.linksDesc, prometheus.GaugeValue, float64(n), k.dir, k.tls, k.auth)
	}
	ch <- prometheus.MustNewConstMetric(c.queuedDesc, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(c.unackedDesc, prometheus.GaugeValue, float64(unacked))
}

func authLabel(a s2s.Auth) string { return a.String() }

// stepLabel is the failed step's name, "other" when the error names none.
func stepLabel(err error) string {
	if st := s2s.StepOf(err); st != "" {
		return string(st)
	}
	return "other"
}

// closeReason sorts a LinkDown's error into a few label values.
func closeReason(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, s2s.ErrIdle):
		return "idle"
	case errors.Is(err, s2s.ErrPeerClosed):
		return "peer_closed"
	case errors.Is(err, s2s.ErrClosed):
		return "shutdown"
	case errors.Is(err, s2s.ErrKeepAlive):
		// Before "timeout": the peer went silent (a half-open connection,
		// a hung server), which an operator tells apart from a slow write.
		return "keepalive"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}
