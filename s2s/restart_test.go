package s2s

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/starttls"
)

// gatedAuthority is the authoritative server of x.test and y.test. It
// confirms every key, but holds its answer about y.test until open is
// closed; asked tells when that question arrived and gone when the asker
// closed the connection it came on.
type gatedAuthority struct {
	ln    net.Listener
	open  chan struct{}
	asked chan struct{}
	gone  chan struct{}
}

func newGatedAuthority(t *testing.T) *gatedAuthority {
	g := &gatedAuthority{ln: listen(t), open: make(chan struct{}), asked: make(chan struct{}, 1), gone: make(chan struct{}, 1)}
	t.Cleanup(func() { g.ln.Close() })
	go func() {
		for {
			conn, err := g.ln.Accept()
			if err != nil {
				return
			}
			go g.serve(conn)
		}
	}()
	return g
}

func (g *gatedAuthority) serve(conn net.Conn) {
	defer conn.Close()
	// Longer than the test waits for the asker to give up.
	conn.SetDeadline(time.Now().Add(3 * wait))
	r := wire.NewReader(conn, wire.DefaultLimits)
	h, err := r.ReadHeader()
	if err != nil {
		return
	}
	wire.WriteHeader(conn, wire.Header{From: h.To, To: h.From, ID: newStreamID()})
	wire.WriteFeatures(conn, dialbackFeature)
	for {
		e, err := r.Next()
		if err != nil {
			return
		}
		if e.Name.Local != "verify" {
			continue
		}
		if e.From == "b.test" && e.To == "y.test" {
			g.asked <- struct{}{}
			go func() {
				// The asker gives up: the connection ends unanswered.
				io.Copy(io.Discard, conn)
				g.gone <- struct{}{}
			}()
			<-g.open
		}
		fmt.Fprintf(conn, "<db:verify from='%s' to='%s' id='%s' type='valid'/>", e.To, e.From, e.ID)
	}
}

// TestRestartDropsPendingDialback: a <db:result> sent before <starttls/>
// belongs to the plaintext stream. Its verification ends with that stream
// and its answer never reaches the TLS stream that follows, where the pair
// is not authenticated. (Under -race this also shows that the stream id,
// rewritten by the restart, is not read unsynchronised by the
// verification.)
func TestRestartDropsPendingDialback(t *testing.T) {
	g := newGatedAuthority(t)
	b := newNode(t, listen(t), []string{"b.test"},
		map[string]netip.AddrPort{"x.test": addrOf(g.ln), "y.test": addrOf(g.ln)}, withMode("optional"))
	p := dialRaw(t, b, "x.test", "b.test")
	defer close(g.open)

	p.write("<db:result from='y.test' to='b.test'>" + dialbackKeyFor("y.test", p.id) + "</db:result>")
	select {
	case <-g.asked:
	case <-time.After(wait):
		t.Fatal("b.test never asked the authority")
	}
	p.write(starttls.StartTLS)
	if e, err := p.r.Next(); err != nil || e.Name.Local != "proceed" {
		t.Fatalf("answer to <starttls/>: %v %v", e.Name, err)
	}
	tc := tls.Client(p.conn, &tls.Config{ServerName: "b.test", InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.r = wire.NewReader(tc, wire.DefaultLimits)
	p.conn = tc
	p.write(headerString("x.test", "b.test"))
	h, err := p.r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	p.id = h.ID
	if _, err := p.r.Next(); err != nil {
		t.Fatalf("features: %v", err)
	}
	// The plaintext stream is over: so is the question asked for it.
	select {
	case <-g.gone:
	case <-time.After(wait):
		t.Fatal("the verification of the plaintext request outlived its stream")
	}

	// On the TLS stream, a request of its own is answered, and nothing for
	// y.test ever is.
	p.write("<db:result from='x.test' to='b.test'>" + dialbackKeyFor("x.test", p.id) + "</db:result>")
	e, err := p.r.Next()
	if err != nil {
		t.Fatal(err)
	}
	el, err := decodeDialback(e)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := el.(dialback.Result); !ok || r.To != "x.test" || r.Type != dialback.Valid {
		t.Fatalf("first answer on the TLS stream: %+v", el)
	}
	p.write(`<message from='a@y.test' to='b@b.test' id='y'/>`)
	if cond := p.streamError(); cond != "invalid-from" {
		t.Fatalf("a stanza of the dropped pair: stream error %q", cond)
	}
	for _, l := range b.m.Links() {
		if l.Remote == "y.test" {
			t.Errorf("link %+v", l)
		}
	}
}

// dialbackKeyFor is a key for from → b.test on stream id; the gated
// authority confirms any key, so its value does not matter.
func dialbackKeyFor(from, id string) string {
	k, _ := dialback.Secret("gated").Key("b.test", from, id)
	return k
}
