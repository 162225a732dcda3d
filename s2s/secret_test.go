package s2s

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// TestRandomSecretKeptAcrossReload: without shared, the key a Manager
// presented before a Reload of the same options (a new random secret drawn
// by config) is still confirmed by it afterwards, as the receiving server
// asks only then; an explicit shared still replaces the secret.
func TestRandomSecretKeptAcrossReload(t *testing.T) {
	lb := listen(t)
	la := listen(t)
	peers := map[string]netip.AddrPort{"b.test": addrOf(lb)}
	opts := func() config.S2S {
		s := config.Default() // shared left out: a fresh random secret each time
		s.Address = []config.Address{{Host: "b.test", IP: addrOf(lb).Addr(), Port: int(addrOf(lb).Port())}}
		return s
	}
	a := newNode(t, la, []string{"a.test"}, peers)

	// b.test is played by hand: it takes a's <db:result> and keeps it.
	const streamID = "b-stream-1"
	keys := make(chan string, 1)
	go func() {
		conn, err := lb.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { conn.Close() })
		r := wire.NewReader(conn, wire.DefaultLimits)
		h, err := r.ReadHeader()
		if err != nil {
			return
		}
		wire.WriteHeader(conn, wire.Header{From: "b.test", To: h.From, ID: streamID})
		wire.WriteFeatures(conn, dialbackFeature)
		e, err := r.Next()
		if err != nil {
			return
		}
		el, err := decodeDialback(e)
		if err != nil {
			return
		}
		if res, ok := el.(dialback.Result); ok {
			keys <- res.Key
		}
	}()
	a.send(`<message from='u@a.test' to='v@b.test' id='m1'/>`)
	var key string
	select {
	case key = <-keys:
	case <-time.After(wait):
		t.Fatal("a.test sent no dialback request")
	}

	verify := func(key string) dialback.Type {
		t.Helper()
		p := dialRaw(t, a, "b.test", "a.test")
		p.write(fmt.Sprintf("<db:verify from='b.test' to='a.test' id='%s'>%s</db:verify>", streamID, key))
		for {
			e, err := p.r.Next()
			if err != nil {
				t.Fatalf("waiting for the verify answer: %v", err)
			}
			el, err := decodeDialback(e)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := el.(dialback.Verify); ok {
				return v.Type
			}
		}
	}

	// The same file loaded again: config draws another random secret.
	if err := a.m.Reload(opts()); err != nil {
		t.Fatal(err)
	}
	if typ := verify(key); typ != dialback.Valid {
		t.Fatalf("after a Reload without shared: the key made before it is %q, want valid", typ)
	}

	// An explicit secret is the operator's: it replaces the random one.
	s := opts()
	s.Shared = "explicit"
	if err := a.m.Reload(s); err != nil {
		t.Fatal(err)
	}
	if typ := verify(key); typ != dialback.Invalid {
		t.Fatalf("after a Reload with a new shared: the old key is %q, want invalid", typ)
	}
	if typ := verify(dialback.Key("explicit", "b.test", "a.test", streamID)); typ != dialback.Valid {
		t.Fatalf("after a Reload with a new shared: its key is %q, want valid", typ)
	}

	// Back to no shared: the Manager's own random secret again.
	if err := a.m.Reload(opts()); err != nil {
		t.Fatal(err)
	}
	if typ := verify(key); typ != dialback.Valid {
		t.Fatalf("shared left out again: the first key is %q, want valid", typ)
	}
}
