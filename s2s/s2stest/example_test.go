package s2stest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/s2stest"
	"github.com/xmpp-s2s/federation/starttls"
)

// exampleTB stands in for the *testing.T a real test would pass: an Example
// has none. It runs the cleanups when done is called, as the testing package
// does at the end of a test.
type exampleTB struct{ cleanups []func() }

func (tb *exampleTB) Helper()                           {}
func (tb *exampleTB) Cleanup(f func())                  { tb.cleanups = append(tb.cleanups, f) }
func (tb *exampleTB) Logf(format string, args ...any)   {}
func (tb *exampleTB) Errorf(format string, args ...any) { fmt.Printf("error: "+format+"\n", args...) }
func (tb *exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (tb *exampleTB) done() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}

// A host test starts a stub for remote.example, wires its Manager under test
// to it (address override, test CA, a certificate the stub trusts) and
// exchanges stanzas with it over required_trusted TLS.
func Example() {
	t := &exampleTB{} // in a test: the *testing.T
	defer t.done()

	// The host's listener comes first: the stub must know where to
	// verify the host's dialback keys.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	stub := s2stest.NewServer(t, "remote.example",
		s2stest.WithStartTLS("required_trusted"),
		s2stest.WithPeer("host.example", ln.Addr().(*net.TCPAddr).AddrPort()))

	delivered := make(chan s2s.Stanza, 1)
	cfg := config.Default()
	cfg.UseStartTLS = "required_trusted"
	cfg.Address = append(cfg.Address, stub.Address())
	host, err := s2s.New(s2s.Config{
		S2S:         cfg,
		IsLocal:     func(d string) bool { return d == "host.example" },
		Deliver:     func(s s2s.Stanza) { delivered <- s },
		Bounce:      func(b s2s.Bounce) { fmt.Println("bounced:", b.Condition) },
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     stub.RootCAs(),
		Certificate: starttls.StaticCert(stub.IssueCertificate("host.example")),
	})
	if err != nil {
		panic(err)
	}
	go host.Serve(ln)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Shutdown, unlike Close, lets the stub acknowledge what the host
	// wrote (XEP-0198) before the link closes: nothing is bounced.
	defer host.Shutdown(ctx)

	host.Send(ctx, []byte(`<message from='alice@host.example' to='bob@remote.example' id='m1'><body>hi</body></message>`))
	got, err := stub.Next(ctx) // waits for the stanza, no sleeping
	if err != nil {
		panic(err)
	}
	fmt.Println("stub got", got.Name, got.ID, "from", got.From)

	stub.Send(ctx, []byte(`<message from='bob@remote.example' to='alice@host.example' id='m2'><body>hello</body></message>`))
	fmt.Println("host got", (<-delivered).ID)

	host.Send(ctx, []byte(`<iq from='host.example' to='remote.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`))
	pong := <-delivered
	fmt.Println("ping", pong.ID, "answered with", pong.Type)

	for _, l := range stub.Links() {
		fmt.Println("stub link", l.Direction, l.Remote, l.TLS(), l.Auth)
	}
	// Output:
	// stub got message m1 from alice@host.example
	// host got m2
	// ping p1 answered with result
	// stub link out host.example TLS1.3 dialback
	// stub link in host.example TLS1.3 dialback
}

// A host tests its error path: the remote domain refuses it in dialback, and
// the host bounces what it sent with a reason.
func ExampleServer_SetDialback() {
	t := &exampleTB{}
	defer t.done()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	stub := s2stest.NewServer(t, "remote.example",
		s2stest.WithPeer("host.example", ln.Addr().(*net.TCPAddr).AddrPort()))
	stub.SetDialback(s2stest.DialbackDeny)

	bounced := make(chan s2s.Bounce, 1)
	cfg := config.Default()
	cfg.Address = append(cfg.Address, stub.Address())
	host, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "host.example" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(b s2s.Bounce) { bounced <- b },
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	go host.Serve(ln)
	defer host.Close()

	host.Send(context.Background(), []byte(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`))
	b := <-bounced
	fmt.Println(b.Stanza.ID, "bounced:", b.Condition)
	// Output:
	// m1 bounced: remote-server-not-found
}

// A host checks that it gives up on a remote server that accepts TCP and
// then says nothing, within its NegotiationTimeout.
func ExampleServer_SetStall() {
	t := &exampleTB{}
	defer t.done()

	stub := s2stest.NewServer(t, "remote.example")
	stub.SetStall(true)

	bounced := make(chan s2s.Bounce, 1)
	cfg := config.Default()
	cfg.Address = append(cfg.Address, stub.Address())
	host, err := s2s.New(s2s.Config{
		S2S:     cfg,
		IsLocal: func(d string) bool { return d == "host.example" },
		Deliver: func(s2s.Stanza) {},
		Bounce:  func(b s2s.Bounce) { bounced <- b },
		Logger:  slog.New(slog.DiscardHandler),
		// A target that connected gets this long to negotiate the
		// stream; each TCP attempt has connection_timeout.
		NegotiationTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	defer host.Close()

	host.Send(context.Background(), []byte(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`))
	b := <-bounced
	fmt.Println(b.Stanza.ID, "bounced:", b.Condition)
	// Output:
	// m1 bounced: remote-server-timeout
}

// A host test waits for its Manager's events with Events instead of a
// channel and a loop of its own: here, the failed link to a remote server
// that refuses it, and the bounce of what waited for that link.
func ExampleEvents() {
	t := &exampleTB{}
	defer t.done()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	stub := s2stest.NewServer(t, "remote.example",
		s2stest.WithPeer("host.example", ln.Addr().(*net.TCPAddr).AddrPort()))
	stub.SetDialback(s2stest.DialbackDeny)

	var events s2stest.Events
	cfg := config.Default()
	cfg.Address = append(cfg.Address, stub.Address())
	host, err := s2s.New(s2s.Config{
		S2S:      cfg,
		IsLocal:  func(d string) bool { return d == "host.example" },
		Deliver:  func(s2s.Stanza) {},
		Bounce:   func(s2s.Bounce) {},
		Observer: events.Observe,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	go host.Serve(ln)
	defer host.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	host.Send(ctx, []byte(`<message from='alice@host.example' to='bob@remote.example' id='m1'/>`))
	failed, err := events.Wait(ctx, s2s.LinkFailed, "host.example", "remote.example")
	if err != nil {
		panic(err)
	}
	fmt.Println(failed.Kind, failed.Link.Direction, "auth refused:", errors.Is(failed.Err, s2s.ErrAuth))
	b, err := events.Wait(ctx, s2s.Bounced, "host.example", "remote.example")
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Kind, b.Bounce.Stanza.ID, b.Bounce.Condition)
	// Output:
	// link-failed out auth refused: true
	// bounce m1 remote-server-not-found
}
