package s2s

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/saslext"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// BenchmarkDirectTLSIncoming is a new incoming direct TLS stream under
// required_trusted, as a peer authenticating with SASL EXTERNAL opens it:
// the handshake, the header, the features, <auth/>, the restarted stream
// and its features, and one message delivered; the receiving side's
// certificate checks (directtls.go, verifyPeer) are on this path. The
// client is a bare crypto/tls connection, so what changes between builds is
// the Manager's side (and the client's handshake, the same in both).
func BenchmarkDirectTLSIncoming(b *testing.B) {
	s := config.Default()
	s.UseStartTLS = "required_trusted"
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{"b.test"}})
	if err != nil {
		b.Fatal(err)
	}
	delivered := make(chan Stanza, 1)
	m, err := New(Config{
		S2S: s, IsLocal: func(d string) bool { return d == "b.test" },
		Deliver:     func(s Stanza) { delivered <- s },
		Bounce:      func(bo Bounce) { b.Errorf("bounced %s: %s", bo.Condition, bo.Text) },
		Certificate: starttls.StaticCert(leaf.TLS),
		RootCAs:     testCA().Pool(),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ln := listenB(b)
	go m.ServeTLS(ln)
	defer m.Shutdown(context.Background())
	peer, err := testCA().Leaf(testcert.Options{DNSNames: []string{"a.test"}})
	if err != nil {
		b.Fatal(err)
	}
	cfg := &tls.Config{
		ServerName: "b.test", RootCAs: testCA().Pool(), Certificates: []tls.Certificate{peer.TLS},
		NextProtos: []string{starttls.ALPN}, MinVersion: tls.VersionTLS13,
	}
	auth := saslext.Auth(saslext.Name, nil, true)
	header := []byte(headerString("a.test", "b.test"))
	msg := []byte(`<message from='x@a.test' to='y@b.test' id='m'/>`)
	open := func(conn *tls.Conn) *wire.Reader {
		if _, err := conn.Write(header); err != nil {
			b.Fatal(err)
		}
		r := wire.NewReader(conn, wire.DefaultLimits)
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
		return r
	}
	b.ReportAllocs()
	for b.Loop() {
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(time.Minute))
		r := open(conn)
		if _, err := conn.Write(auth); err != nil {
			b.Fatal(err)
		}
		if e, err := r.Next(); err != nil || e.Name.Local != "success" {
			b.Fatalf("answer to <auth/>: %+v, %v", e.Name, err)
		}
		open(conn)
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		<-delivered
		conn.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "streams/s")
}
