package s2s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/resolver"
)

// yesAuthority is an authoritative server that confirms every key it is
// asked about, so that a fuzzed stream can authenticate x.test with any key
// and reach the stanza paths.
func yesAuthority(tb testing.TB) net.Listener {
	return serveEach(tb, func(conn net.Conn) {
		r := wire.NewReader(conn, wire.DefaultLimits)
		h, err := r.ReadHeader()
		if err != nil {
			return
		}
		wire.WriteHeader(conn, wire.Header{From: "x.test", To: h.From, ID: newStreamID()})
		wire.WriteFeatures(conn, dialbackFeature)
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			if e.Name.Local == "verify" {
				fmt.Fprintf(conn, "<db:verify from='%s' to='%s' id='%s' type='valid'/>",
					e.To, e.From, e.ID)
			}
		}
	})
}

// oneResolver knows only x.test; every other domain fails at once, so
// that fuzzed dialback requests never reach DNS.
type oneResolver struct{ addr netip.AddrPort }

func (r oneResolver) Resolve(ctx context.Context, d string) ([]resolver.Target, error) {
	if d == "x.test" {
		return []resolver.Target{{Host: d, Addr: r.addr}}, nil
	}
	return nil, fmt.Errorf("%s: %w", d, resolver.ErrNotFound)
}

// FuzzIncomingStream feeds bytes after a valid stream header to an
// incoming stream of a real Manager over loopback TCP. Whatever the bytes,
// the Manager must answer with a well-formed stream that ends, deliver
// only stanzas of the pair x.test → b.test that dialback authenticated, and
// shut down with no goroutine left.
func FuzzIncomingStream(f *testing.F) {
	for _, s := range []string{
		"",
		"<db:result from='x.test' to='b.test'>k</db:result><message from='a@x.test' to='b@b.test' id='1'><body>hi</body></message>",
		"<db:result from='x.test' to='b.test'>k</db:result><message from='a@evil.test' to='b@b.test'/>",
		"<db:result from='evil.test' to='b.test'>k</db:result>",
		"<db:verify from='y.test' to='b.test' id='abc'>0123</db:verify>",
		"<message from='a@x.test' to='b@b.test'/>",
		"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		"<presence from='x.test' to='b.test'><x xmlns='urn:example'><y/></x></presence></stream:stream>",
		"<!DOCTYPE x><?pi?><!-- c -->",
		"<iq from='x.test' to='b.test' type='get' id='1'><![CDATA[<]]></iq>",
		"\xff\xfe<message/>",
		"   \n  </stream:stream>",
		"<stream:error><host-gone xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
	} {
		f.Add([]byte(s))
	}
	auth := yesAuthority(f)
	var bad sync.Map // what Deliver saw that it must not
	var delivered atomic.Int64
	c := Config{
		S2S:      config.Default(),
		IsLocal:  func(d string) bool { return d == "b.test" },
		Resolver: oneResolver{auth.Addr().(*net.TCPAddr).AddrPort()},
		Deliver: func(s Stanza) {
			from, err1 := domain.Normalize(domainpart(s.From))
			to, err2 := domain.Normalize(domainpart(s.To))
			delivered.Add(1)
			if err1 != nil || err2 != nil || from != "x.test" || to != "b.test" {
				bad.Store(s.From+" → "+s.To, true)
			}
		},
		Bounce:             func(Bounce) {},
		Logger:             slog.New(slog.DiscardHandler),
		NegotiationTimeout: 5 * time.Second,
		IdleTimeout:        5 * time.Second,
	}
	c.S2S.MaxStanzaSize = 4096
	m, err := New(c)
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go m.Serve(ln)
	f.Cleanup(func() {
		f.Logf("%d stanzas delivered", delivered.Load())
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			f.Errorf("Shutdown: %v (goroutines left)", err)
		}
	})
	header := headerString("x.test", "b.test")
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(wait))
		// Bytes up to the first </db:result> go first; the rest waits for
		// the dialback answer, so that stanzas after it meet an
		// authenticated stream as they would from a real peer. A request
		// the Manager drops gets no answer: then the rest goes after a
		// moment anyway (either order is an input worth trying).
		first, rest := data, []byte(nil)
		if i := bytes.Index(data, []byte("</db:result>")); i >= 0 {
			first, rest = data[:i+len("</db:result>")], data[i+len("</db:result>"):]
		}
		answered := make(chan struct{})
		readerDone := make(chan struct{})
		defer close(readerDone)
		go func() {
			conn.Write([]byte(header))
			conn.Write(first)
			if rest != nil {
				select {
				case <-answered:
				case <-readerDone:
				case <-time.After(20 * time.Millisecond):
				}
				conn.Write(rest)
			}
			conn.(*net.TCPConn).CloseWrite()
		}()
		r := wire.NewReader(conn, wire.Limits{})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatalf("our header: %v", err)
		}
		once := sync.OnceFunc(func() { close(answered) })
		for {
			e, err := r.Next()
			var pe *wire.PeerError
			switch {
			case err == nil:
				if e.Name.Local == "result" {
					once()
				}
				continue
			case errors.Is(err, io.EOF), errors.As(err, &pe), errors.Is(err, wire.ErrUnexpectedEOF), isReset(err):
			default:
				t.Fatalf("our side of the stream: %v", err)
			}
			break
		}
		bad.Range(func(k, _ any) bool {
			t.Fatalf("delivered %s", k)
			return false
		})
	})
}
