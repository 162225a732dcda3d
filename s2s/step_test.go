package s2s_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/dnstest"
	"github.com/xmpp-s2s/federation/internal/testnet"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/s2stest"
	"github.com/xmpp-s2s/federation/starttls"
)

// TestBounceNamesStep: a link that fails at each step bounces with a reason
// that names the step in the diagnosis's words ("TLS failed: …"), and its
// LinkFailed event and the bounce's error give the step to StepOf.
func TestBounceNamesStep(t *testing.T) {
	dns, err := dnstest.NewServer("127.0.0.1:0") // NXDOMAIN for every name
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ours := ln.Addr().(*net.TCPAddr).AddrPort()
	refusedAddr := testnet.RefusedAddr(t)

	// tlsStub offers no TLS, which our use_starttls = "required" refuses;
	// denyStub refuses our dialback; both are real Managers.
	tlsStub := s2stest.NewServer(t, "tls.example", s2stest.WithPeer("host.example", ours))
	denyStub := s2stest.NewServer(t, "deny.example", s2stest.WithStartTLS("required"), s2stest.WithPeer("host.example", ours))
	denyStub.SetDialback(s2stest.DialbackDeny)

	cfg := config.Default()
	cfg.HostPolicy = append(cfg.HostPolicy, config.HostPolicy{Host: "policy.example", Policy: "deny"})
	res, err := resolver.New(resolver.Config{
		Nameservers: []string{dns.Addr()}, Retries: 1,
		Overrides: map[string]resolver.Override{
			"refused.example": {Addr: refusedAddr.Addr(), Port: int(refusedAddr.Port())},
			"tls.example":     {Addr: tlsStub.Addr().Addr(), Port: int(tlsStub.Addr().Port())},
			"deny.example":    {Addr: denyStub.Addr().Addr(), Port: int(denyStub.Addr().Port())},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	bounces := make(chan s2s.Bounce, 8)
	failed := make(chan s2s.Event, 8)
	cfg.UseStartTLS = "required"
	m, err := s2s.New(s2s.Config{
		S2S:         cfg,
		IsLocal:     func(d string) bool { return d == "host.example" },
		Deliver:     func(s2s.Stanza) {},
		Bounce:      func(b s2s.Bounce) { bounces <- b },
		Observer:    func(e s2s.Event) { sendIf(failed, e, e.Kind == s2s.LinkFailed) },
		Logger:      slog.New(slog.DiscardHandler),
		Resolver:    res,
		Certificate: starttls.StaticCert(denyStub.IssueCertificate("host.example")),
	})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ln)
	defer m.Close()

	for i, tc := range []struct {
		remote string
		step   s2s.Step
		text   string
		event  bool // a LinkFailed event comes too (not for policy)
	}{
		{"policy.example", s2s.StepPolicy, "not allowed", false},
		{"nowhere.example", s2s.StepDNS, "DNS failed: ", true},
		{"refused.example", s2s.StepConnect, "TCP connect failed: ", true},
		{"tls.example", s2s.StepTLS, "TLS failed: ", true},
		{"deny.example", s2s.StepAuth, "authentication failed: ", true},
	} {
		t.Run(strconv.Itoa(i)+"-"+tc.step.Title(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m.Send(ctx, []byte(`<message from='a@host.example' to='b@`+tc.remote+`' id='`+strconv.Itoa(i)+`'/>`))
			var b s2s.Bounce
			select {
			case b = <-bounces:
			case <-ctx.Done():
				t.Fatal("no bounce")
			}
			if !strings.Contains(b.Text, tc.text) || s2s.StepOf(b.Err) != tc.step {
				t.Errorf("bounce %q (step %q), want %q in it and step %s", b.Text, s2s.StepOf(b.Err), tc.text, tc.step)
			}
			if !tc.event {
				return
			}
			select {
			case e := <-failed:
				if e.Link.Remote != tc.remote || s2s.StepOf(e.Err) != tc.step || !strings.HasPrefix(e.Err.Error(), tc.step.Title()+" failed: ") {
					t.Errorf("LinkFailed %s: %v (step %q)", e.Link.Remote, e.Err, s2s.StepOf(e.Err))
				}
			case <-ctx.Done():
				t.Fatal("no LinkFailed event")
			}
		})
	}
}

func sendIf(ch chan<- s2s.Event, e s2s.Event, ok bool) {
	if ok {
		ch <- e
	}
}
