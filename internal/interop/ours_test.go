package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// ourDomain is the domain our Manager serves in every interop test.
const ourDomain = "go.test"

// wait bounds every wait for a peer: long enough for ejabberd on a loaded
// two-core machine, short enough to fail a hung test.
const wait = 60 * time.Second

// testCA is the CA of every certificate in the suite, made once.
var testCA = sync.OnceValue(func() *testcert.CA {
	ca, err := testcert.NewCA("federation interop CA")
	if err != nil {
		panic(err)
	}
	return ca
})

// leafFor returns a certificate for domain from the test CA.
func leafFor(t *testing.T, domain string) *testcert.Leaf {
	t.Helper()
	leaf, err := testCA().Leaf(testcert.Options{DNSNames: []string{domain}, XmppAddrs: []string{domain}})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// keys is our Manager's dialback KeySource. Normally it computes keys from
// a secret; when broken, it returns a fresh random key on every call, so the
// key we present never matches the one we later confirm as authoritative
// server: exactly what a peer must refuse.
type keys struct {
	good   dialback.Secret
	broken atomic.Bool
}

func (k *keys) Key(receiving, originating, streamID string) (string, error) {
	if k.broken.Load() {
		var b [32]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:]), nil
	}
	return k.good.Key(receiving, originating, streamID)
}

// countingListener counts the connections a peer opened to us, to tell
// whether it verified a key over its existing stream or a new one.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// ours is our side of an interop test: a Manager serving ourDomain on a
// loopback port, answering pings, recording what it delivers and bounces.
type ours struct {
	t    *testing.T
	m    *s2s.Manager
	ln   *countingListener
	port int
	keys *keys
	s2s  config.S2S

	delivered chan s2s.Stanza
	bounced   chan s2s.Bounce
	failed    chan s2s.Event // AuthFailed events
	downs     chan s2s.Event // LinkDown events
	linkUps   atomic.Int64   // LinkUp events so far
}

// listenOurs reserves our port first: the peer's configuration names it.
func listenOurs(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: ln}
}

func (l *countingListener) port() int { return l.Addr().(*net.TCPAddr).Port }

// startOurs starts our Manager on ln with use_starttls = mode, reaching
// the peer's domain at peerPort on 127.0.0.1. Each tweak then changes the
// Manager's configuration (SASL EXTERNAL, a resolver, trusted roots).
func startOurs(t *testing.T, ln *countingListener, mode, peer string, peerPort int, tweaks ...func(*s2s.Config)) *ours {
	t.Helper()
	s := config.Default()
	s.UseStartTLS = mode
	s.MaxRetryDelay = time.Second
	s.Address = []config.Address{{Host: peer, IP: netip.MustParseAddr("127.0.0.1"), Port: peerPort}}
	o := &ours{
		t: t, ln: ln, port: ln.port(), s2s: s,
		keys:      &keys{good: dialback.Secret(s.Shared)},
		delivered: make(chan s2s.Stanza, 100),
		bounced:   make(chan s2s.Bounce, 100),
		failed:    make(chan s2s.Event, 100),
		downs:     make(chan s2s.Event, 100),
	}
	leaf := leafFor(t, ourDomain)
	c := s2s.Config{
		S2S:         s,
		IsLocal:     func(d string) bool { return d == ourDomain },
		Deliver:     o.deliver,
		Bounce:      func(b s2s.Bounce) { o.bounced <- b },
		Keys:        o.keys,
		RootCAs:     testCA().Pool(),
		Certificate: starttls.StaticCert(leaf.TLS),
		Logger:      testLogger(t),
		// These scenarios test dialback in both roles; with SASL EXTERNAL
		// on (the default), peers whose certificates we trust would skip it.
		DisableSASLExternal: true,
		Observer: func(e s2s.Event) {
			var ch chan s2s.Event
			switch e.Kind {
			case s2s.LinkUp:
				o.linkUps.Add(1)
			case s2s.AuthFailed:
				ch = o.failed
			case s2s.LinkDown:
				ch = o.downs
			}
			if ch != nil {
				select {
				case ch <- e:
				default:
				}
			}
		},
	}
	for _, tweak := range tweaks {
		tweak(&c)
	}
	m, err := s2s.New(c)
	if err != nil {
		t.Fatal(err)
	}
	o.m = m
	served := make(chan struct{})
	go func() { m.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	})
	return o
}

// deliver answers XEP-0199 pings, as the host server would, and records
// every stanza.
func (o *ours) deliver(s s2s.Stanza) {
	if s.Name == "iq" && s.Type == "get" && bytes.Contains(s.Raw, []byte("urn:xmpp:ping")) {
		reply := "<iq type='result' id='" + attr(s.ID) + "' from='" + attr(s.To) + "' to='" + attr(s.From) + "'/>"
		if err := o.m.Send(context.Background(), []byte(reply)); err != nil {
			o.t.Errorf("answering a ping: %v", err)
		}
	}
	select {
	case o.delivered <- s:
	default:
		o.t.Errorf("delivered stanza dropped: %s", s.Raw)
	}
}

func attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}

func (o *ours) send(t *testing.T, raw string) {
	t.Helper()
	if err := o.m.Send(context.Background(), []byte(raw)); err != nil {
		t.Fatalf("Send(%s): %v", raw, err)
	}
}

// deliveredMatching waits for a delivered stanza that satisfies ok,
// failing on a bounce.
func (o *ours) deliveredMatching(t *testing.T, what string, ok func(s2s.Stanza) bool) s2s.Stanza {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case s := <-o.delivered:
			if ok(s) {
				return s
			}
			t.Logf("delivered, not yet %s: %s", what, s.Raw)
		case b := <-o.bounced:
			t.Fatalf("waiting for %s: bounced %s: %s (%v)", what, b.Condition, b.Text, b.Err)
		case <-timeout:
			t.Fatalf("waiting for %s: nothing within %s", what, wait)
		}
	}
}

func (o *ours) nextBounce(t *testing.T) s2s.Bounce {
	t.Helper()
	select {
	case b := <-o.bounced:
		return b
	case s := <-o.delivered:
		t.Fatalf("delivered instead of bounced: %s", s.Raw)
	case <-time.After(wait):
		t.Fatalf("nothing bounced within %s", wait)
	}
	return s2s.Bounce{}
}

func (o *ours) nextAuthFailed(t *testing.T) s2s.Event {
	t.Helper()
	select {
	case e := <-o.failed:
		return e
	case <-time.After(wait):
		t.Fatalf("no AuthFailed event within %s", wait)
	}
	return s2s.Event{}
}

// links returns our live links to or from peer, by direction.
func (o *ours) links(peer string) (out, in []s2s.LinkInfo) {
	for _, l := range o.m.Links() {
		if l.Remote != peer {
			continue
		}
		if l.Direction == s2s.Outgoing {
			out = append(out, l)
		} else {
			in = append(in, l)
		}
	}
	return out, in
}

// reload applies a change to our options.
func (o *ours) reload(t *testing.T, f func(*config.S2S)) {
	t.Helper()
	s := o.s2s.Clone()
	f(&s)
	if err := o.m.Reload(s); err != nil {
		t.Fatal(err)
	}
}

// waitLinksDown waits for the LinkDown events of our links with remote
// in each of dirs, in any order.
func (o *ours) waitLinksDown(t *testing.T, remote string, dirs ...s2s.Direction) {
	t.Helper()
	want := map[s2s.Direction]bool{}
	for _, d := range dirs {
		want[d] = true
	}
	timeout := time.After(wait)
	for len(want) > 0 {
		select {
		case e := <-o.downs:
			if e.Link.Remote == remote {
				delete(want, e.Link.Direction)
			}
		case <-timeout:
			t.Fatalf("links to %s still up after %s: %v", remote, wait, want)
		}
	}
}
