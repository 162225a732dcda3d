package s2s_test

import (
	"context"
	"log"
	"net"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// A server listening for both kinds of s2s connection: STARTTLS on 5269 and
// XEP-0368 direct TLS on 5270 (published as _xmpps-server._tcp), with
// certificate authentication (SASL EXTERNAL) preferred over dialback.
func ExampleManager_ServeTLS() {
	cfg := config.Default()
	cfg.UseStartTLS = "required_trusted"
	cfg.CertFile = "/etc/xmpp/example.org.pem"
	m, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "example.org" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(s2s.Bounce) {},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	plain, err := net.Listen("tcp", ":5269")
	if err != nil {
		log.Fatal(err)
	}
	direct, err := net.Listen("tcp", ":5270")
	if err != nil {
		log.Fatal(err)
	}
	go m.Serve(plain)
	log.Print(m.ServeTLS(direct))
}
