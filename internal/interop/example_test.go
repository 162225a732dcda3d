package interop_test

import (
	"context"
	"testing"

	"github.com/xmpp-s2s/federation/internal/interop"
)

// A test starts a Prosody that reaches example.test, a domain the test
// serves on loopback, and pings it from Prosody's side. The instance lives
// in the test's temp dir and is stopped when the test ends.
func ExampleStartProsody() {
	testPing := func(t *testing.T, ourPort int) {
		p := interop.StartProsody(t, interop.ProsodyConfig{
			Domain: "prosody.test",
			TLS:    "false",
			Routes: []interop.Route{{Domain: "example.test", Host: "127.0.0.1", Port: ourPort}},
		})
		if out, err := p.Ping(context.Background(), "prosody.test", "example.test"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	_ = testPing
}

// ejabberd is driven through ejabberdctl; the SRV record for the test's
// domain lives in the Erlang VM's DNS cache, never in /etc.
func ExampleStartEjabberd() {
	testSend := func(t *testing.T, ourPort int, certAndKey []byte) {
		e := interop.StartEjabberd(t, interop.EjabberdConfig{
			Domain:  "ej.test",
			TLS:     "optional",
			CertPEM: certAndKey,
			Routes:  []interop.Route{{Domain: "example.test", Host: "127.0.0.1", Port: ourPort}},
		})
		err := e.SendStanza(context.Background(), "ej.test", "example.test",
			"<message from='ej.test' to='example.test'><body>hi</body></message>")
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = testSend
}
