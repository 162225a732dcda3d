package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testnet"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/metrics"
	"github.com/xmpp-s2s/federation/s2s/s2stest"
	"github.com/xmpp-s2s/federation/starttls"
)

// TestCollector runs a real Manager against a stub over TLS: one message
// delivered, one bounced because the other domain's port refuses, and
// checks every metric the two leave behind.
func TestCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stub := s2stest.NewServer(t, "remote.example",
		s2stest.WithStartTLS("required_trusted"),
		s2stest.WithPeer("host.example", ln.Addr().(*net.TCPAddr).AddrPort()))

	col := metrics.New()
	events := make(chan s2s.Event, 64)
	bounces := make(chan s2s.Bounce, 4)
	cfg := config.Default()
	cfg.UseStartTLS = "required_trusted"
	down := testnet.RefusedAddr(t)
	cfg.Address = append(cfg.Address, stub.Address(),
		config.Address{Host: "down.example", IP: down.Addr(), Port: int(down.Port())})
	m, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "host.example" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(b s2s.Bounce) { bounces <- b },
		Observer: func(e s2s.Event) {
			col.Observe(e)
			events <- e
		},
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     stub.RootCAs(),
		Certificate: starttls.StaticCert(stub.IssueCertificate("host.example")),
	})
	if err != nil {
		t.Fatal(err)
	}
	col.Attach(m.Links)
	go m.Serve(ln)
	t.Cleanup(func() { m.Close() })

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := `<message from='a@host.example' to='b@remote.example' id='m1'><body>hi</body></message>`
	if err := m.Send(ctx, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, events, s2s.StanzaOut)
	if err := m.Send(ctx, []byte(`<message from='a@host.example' to='b@down.example' id='m2'/>`)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-bounces:
		if step := s2s.StepOf(b.Err); step != s2s.StepConnect {
			t.Errorf("bounce %q: step %q, want connect", b.Text, step)
		}
	case <-ctx.Done():
		t.Fatal("no bounce")
	}

	// Our one link shows twice: the stub's Manager takes our request for a
	// bidirectional stream, so the reverse pair is an incoming link on it.
	want := `
# HELP xmpp_s2s_bounces_total Stanzas handed back to the host unsent, by XMPP error condition.
# TYPE xmpp_s2s_bounces_total counter
xmpp_s2s_bounces_total{condition="remote-server-not-found"} 1
# HELP xmpp_s2s_links Authenticated domain pairs now, by direction, TLS version and authentication method.
# TYPE xmpp_s2s_links gauge
xmpp_s2s_links{auth="dialback",direction="in",tls="TLS1.3"} 1
xmpp_s2s_links{auth="dialback",direction="out",tls="TLS1.3"} 1
# HELP xmpp_s2s_links_opened_total Domain pairs authenticated, by direction and authentication method.
# TYPE xmpp_s2s_links_opened_total counter
xmpp_s2s_links_opened_total{auth="dialback",direction="in"} 1
xmpp_s2s_links_opened_total{auth="dialback",direction="out"} 1
# HELP xmpp_s2s_queued_stanzas Stanzas waiting to be written on outgoing links.
# TYPE xmpp_s2s_queued_stanzas gauge
xmpp_s2s_queued_stanzas 0
# HELP xmpp_s2s_stanzas_total Stanzas delivered to the host (in) and written to remote servers (out).
# TYPE xmpp_s2s_stanzas_total counter
xmpp_s2s_stanzas_total{direction="in"} 0
xmpp_s2s_stanzas_total{direction="out"} 1
`
	names := []string{"xmpp_s2s_bounces_total", "xmpp_s2s_links", "xmpp_s2s_links_opened_total",
		"xmpp_s2s_queued_stanzas", "xmpp_s2s_stanzas_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	failures := map[string]float64{"connect": 1, "dns": 0, "tls": 0, "auth": 0, "policy": 0, "stream": 0}
	for step, n := range failures {
		c, err := failureCount(reg, step)
		if err != nil {
			t.Fatal(err)
		}
		if c != n {
			t.Errorf("link_failures_total{direction=out,step=%s} = %v, want %v", step, c, n)
		}
	}
	// The stub's stream is bidirectional (XEP-0288): the reverse pair came
	// up with ours, an incoming link on our stream.
	if n := testutil.CollectAndCount(col, "xmpp_s2s_link_setup_seconds"); n != 2 {
		t.Errorf("link_setup_seconds has %d series, want 2 (out, and in for the reverse pair)", n)
	}
	if got := bytesOut(t, reg); got != float64(len(msg)) {
		t.Errorf("stanza_bytes_total{out} = %v, want %d", got, len(msg))
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func waitFor(t *testing.T, ctx context.Context, events <-chan s2s.Event, kind s2s.EventKind) s2s.Event {
	t.Helper()
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("no %s event", kind)
		}
	}
}

func failureCount(g prometheus.Gatherer, step string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "xmpp_s2s_link_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == "out" && labels["step"] == step {
				return m.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, nil
}

func bytesOut(t *testing.T, g prometheus.Gatherer) float64 {
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "xmpp_s2s_stanza_bytes_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "out" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestStreamManagementMetrics feeds the Collector what a link that died
// under XEP-0198 leaves: its LinkDown for a peer that stopped answering,
// the resent copy of a stanza, and links holding unacknowledged stanzas.
func TestStreamManagementMetrics(t *testing.T) {
	col := metrics.New()
	col.Attach(func() []s2s.LinkInfo {
		return []s2s.LinkInfo{
			{Direction: s2s.Outgoing, Local: "a.example", Remote: "b.example", Auth: s2s.AuthDialback, StreamManagement: true, Unacked: 3, Queued: 1},
			{Direction: s2s.Outgoing, Local: "a.example", Remote: "c.example", Auth: s2s.AuthDialback, StreamManagement: true, Unacked: 2},
		}
	})
	link := s2s.LinkInfo{Direction: s2s.Outgoing, Local: "a.example", Remote: "b.example"}
	for _, e := range []s2s.Event{
		{Kind: s2s.StanzaOut, Link: link, Bytes: 10},
		{Kind: s2s.LinkDown, Link: link, Err: fmt.Errorf("link a.example → b.example: %w", s2s.ErrKeepAlive)},
		{Kind: s2s.StanzaOut, Link: link, Bytes: 10, Resent: true},
		{Kind: s2s.LinkDown, Link: link, Err: s2s.ErrIdle},
	} {
		col.Observe(e)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	want := `
# HELP xmpp_s2s_links_closed_total Links that ended, by direction and reason (closed, idle, peer_closed, shutdown, keepalive, timeout, error).
# TYPE xmpp_s2s_links_closed_total counter
xmpp_s2s_links_closed_total{direction="out",reason="idle"} 1
xmpp_s2s_links_closed_total{direction="out",reason="keepalive"} 1
# HELP xmpp_s2s_stanzas_resent_total Stanzas written a second time, on a new stream, because the stream that carried them died before the peer acknowledged them (XEP-0198); each is in stanzas_total{direction="out"} twice.
# TYPE xmpp_s2s_stanzas_resent_total counter
xmpp_s2s_stanzas_resent_total 1
# HELP xmpp_s2s_stanzas_total Stanzas delivered to the host (in) and written to remote servers (out).
# TYPE xmpp_s2s_stanzas_total counter
xmpp_s2s_stanzas_total{direction="in"} 0
xmpp_s2s_stanzas_total{direction="out"} 2
# HELP xmpp_s2s_unacked_stanzas Stanzas written on outgoing links with stream management (XEP-0198) that the peer has not acknowledged yet.
# TYPE xmpp_s2s_unacked_stanzas gauge
xmpp_s2s_unacked_stanzas 5
# HELP xmpp_s2s_queued_stanzas Stanzas waiting to be written on outgoing links.
# TYPE xmpp_s2s_queued_stanzas gauge
xmpp_s2s_queued_stanzas 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xmpp_s2s_links_closed_total",
		"xmpp_s2s_stanzas_resent_total", "xmpp_s2s_stanzas_total", "xmpp_s2s_unacked_stanzas", "xmpp_s2s_queued_stanzas"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestTLSResumedMetric: a second link to the same server under the same
// certificate resumes the first one's TLS session (a real Manager against
// the stub, each local domain on a connection of its own), and
// tls_resumed_total counts it, beside links_opened_total, in each
// direction: ours, and the stub's reverse pair that came up on our
// stream.
func TestTLSResumedMetric(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	stub := s2stest.NewServer(t, "remote.example", s2stest.WithStartTLS("required_trusted"),
		s2stest.WithPeer("host.example", addr), s2stest.WithPeer("other.example", addr))
	col := metrics.New()
	bounces := make(chan s2s.Bounce, 4)
	cfg := config.Default()
	cfg.UseStartTLS = "required_trusted"
	cfg.Address = append(cfg.Address, stub.Address())
	m, err := s2s.New(s2s.Config{
		S2S:      cfg,
		IsLocal:  func(d string) bool { return d == "host.example" || d == "other.example" },
		Deliver:  func(s2s.Stanza) {},
		Bounce:   func(b s2s.Bounce) { bounces <- b },
		Observer: col.Observe,
		Logger:   slog.New(slog.DiscardHandler),
		RootCAs:  stub.RootCAs(),
		// One certificate for both domains: the session it made is the
		// one the second link may resume.
		Certificate:      starttls.StaticCert(stub.IssueCertificate("host.example", "other.example")),
		DisablePiggyback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	col.Attach(m.Links)
	go m.Serve(ln)
	t.Cleanup(func() { m.Close() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, from := range []string{"host.example", "other.example"} {
		if err := m.Send(ctx, []byte("<message from='a@"+from+"' to='b@remote.example'/>")); err != nil {
			t.Fatal(err)
		}
		if _, err := stub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// (Once the test ends, Close bounces what the stub has not
	// acknowledged yet: XEP-0198 without resumption.)
	select {
	case b := <-bounces:
		t.Fatalf("bounced: %s", b.Text)
	default:
	}
	resumed := map[bool]int{}
	for _, l := range m.Links() {
		if l.Direction == s2s.Outgoing {
			resumed[l.TLSResumed]++
		}
	}
	if resumed[true] != 1 || resumed[false] != 1 {
		t.Fatalf("outgoing links resumed/not: %d/%d, want 1/1: %+v", resumed[true], resumed[false], m.Links())
	}
	want := `
# HELP xmpp_s2s_tls_resumed_total Domain pairs authenticated on a stream whose TLS handshake resumed an earlier session instead of a full handshake, by direction; of the links in xmpp_s2s_links_opened_total.
# TYPE xmpp_s2s_tls_resumed_total counter
xmpp_s2s_tls_resumed_total{direction="in"} 1
xmpp_s2s_tls_resumed_total{direction="out"} 1
# HELP xmpp_s2s_links_opened_total Domain pairs authenticated, by direction and authentication method.
# TYPE xmpp_s2s_links_opened_total counter
xmpp_s2s_links_opened_total{auth="dialback",direction="in"} 2
xmpp_s2s_links_opened_total{auth="dialback",direction="out"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xmpp_s2s_tls_resumed_total", "xmpp_s2s_links_opened_total"); err != nil {
		t.Error(err)
	}
}
