package s2s_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// Two domains federate on loopback: a.example sends a message to
// b.example, which delivers it to its host.
func Example() {
	lnA, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	override := func(host string, ln net.Listener) config.Address {
		ap := ln.Addr().(*net.TCPAddr).AddrPort()
		return config.Address{Host: host, IP: ap.Addr(), Port: int(ap.Port())}
	}

	delivered := make(chan s2s.Stanza, 1)
	start := func(local string, ln net.Listener, peer config.Address) *s2s.Manager {
		cfg := config.Default() // use_starttls = "false": no certificate needed
		cfg.Address = []config.Address{peer}
		m, err := s2s.New(s2s.Config{
			S2S:     cfg,
			IsLocal: func(d string) bool { return d == local },
			Deliver: func(st s2s.Stanza) { delivered <- st },
			Bounce:  func(b s2s.Bounce) { fmt.Println("bounced:", b.Condition, b.Text) },
		})
		if err != nil {
			panic(err)
		}
		go m.Serve(ln)
		return m
	}
	a := start("a.example", lnA, override("b.example", lnB))
	b := start("b.example", lnB, override("a.example", lnA))
	defer func() {
		// Shutdown, unlike Close, lets a's link finish: the peer
		// acknowledges what was written (XEP-0198) before it closes.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		b.Shutdown(ctx)
	}()

	a.Send(context.Background(), []byte(`<message from='alice@a.example' to='bob@b.example'><body>Hi Bob</body></message>`))
	select {
	case st := <-delivered:
		fmt.Printf("%s got a %s from %s\n", st.To, st.Name, st.From)
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// bob@b.example got a message from alice@a.example
}

// A bounce carries the stanza, the condition and the reason; Reply builds
// the error stanza to route back to the sender.
func ExampleBounce_Reply() {
	st, _ := s2s.ParseStanza([]byte(`<iq xmlns='jabber:client' from='alice@a.example/phone' to='b.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`))
	b := s2s.Bounce{Stanza: st, Condition: stanza.RemoteServerTimeout, Text: "b.example did not answer within 10s"}
	fmt.Println(string(b.Reply()))
	// Output:
	// <iq xmlns='jabber:server' from='b.example' to='alice@a.example/phone' id='p1' type='error'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>b.example did not answer within 10s</text></error></iq>
}

// ParseStanza checks what a host hands over and reads the envelope once; a
// stanza from a client session moves to the server namespace.
func ExampleParseStanza() {
	st, err := s2s.ParseStanza([]byte(`<message xmlns='jabber:client' from='alice@a.example' to='bob@b.example' id='m1' type='chat'><body>Hi</body></message>`))
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Name, st.From, st.To, st.ID, st.Type)
	fmt.Println(string(st.Raw))
	// Output:
	// message alice@a.example bob@b.example m1 chat
	// <message xmlns='jabber:server' from='alice@a.example' to='bob@b.example' id='m1' type='chat'><body>Hi</body></message>
}

// A host keeps its local domains in the Manager's form, so that IsLocal
// compares with ==.
func ExampleNormalizeDomain() {
	for _, d := range []string{"Example.ORG.", "bücher.example", "192.0.2.1"} {
		n, err := s2s.NormalizeDomain(d)
		fmt.Println(n, err != nil)
	}
	// Output:
	// example.org false
	// xn--bcher-kva.example false
	//  true
}
