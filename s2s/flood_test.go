package s2s

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// TestDialbackFlood: one stream may send MaxDialbackPerStream <db:result>
// requests, repeats of a pair included; the next ends it with
// policy-violation, so one connection cannot make us open verification
// streams without end.
func TestDialbackFlood(t *testing.T) {
	const limit = 4
	domains := []string{"x.test"}
	for i := range limit {
		domains = append(domains, fmt.Sprintf("d%d.test", i))
	}
	b := authorityFor(t, domains, withConfig(func(c *Config) { c.MaxDialbackPerStream = limit }))
	bystander := dialRaw(t, b, "x.test", "b.test")
	if typ := bystander.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("bystander dialback %q", typ)
	}
	p := dialRaw(t, b, "d0.test", "b.test")
	for i := range limit / 2 {
		d := fmt.Sprintf("d%d.test", i)
		for range 2 {
			if typ := p.result(rawSecret, d, "b.test"); typ != dialback.Valid {
				t.Fatalf("dialback %s %q", d, typ)
			}
		}
	}
	// A pair already authenticated counts too.
	key := dialback.Key(rawSecret, "b.test", "d0.test", p.id)
	p.write(fmt.Sprintf("<db:result from='d0.test' to='b.test'>%s</db:result>", key))
	if cond := p.streamError(); cond != "policy-violation" {
		t.Fatalf("stream error %q", cond)
	}
	p.expectClosed()
	checkBystander(t, b, bystander, "after")
}

// TestVerifyStorm: thousands of <db:verify> on one stream are each answered,
// in order and correctly, without holding up other streams.
func TestVerifyStorm(t *testing.T) {
	const secret = "b secret"
	b, bystander := hostileTarget(t, withConfig(func(c *Config) { c.Keys = dialback.Secret(secret) }))
	p := dialRaw(t, b, "y.test", "b.test")
	const n = 5000
	go func() {
		for i := range n {
			id := "s" + strconv.Itoa(i)
			key := dialback.Key(secret, "y.test", "b.test", id)
			if i%2 == 1 {
				key = dialback.Key("wrong", "y.test", "b.test", id)
			}
			fmt.Fprintf(p.conn, "<db:verify from='y.test' to='b.test' id='%s'>%s</db:verify>", id, key)
		}
	}()
	for i := range n {
		e, err := p.r.Next()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		el, err := decodeDialback(e)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := el.(dialback.Verify)
		want := dialback.Valid
		if i%2 == 1 {
			want = dialback.Invalid
		}
		if !ok || v.ID != "s"+strconv.Itoa(i) || v.Type != want || v.From != "b.test" || v.To != "y.test" {
			t.Fatalf("answer %d: %+v, want %s", i, el, want)
		}
		if i == n/2 {
			checkBystander(t, b, bystander, "mid-storm")
		}
	}
}

// TestMaxPerAddress: one address may hold MaxPerAddress streams; one more is
// refused with policy-violation before its header is read. Other addresses
// are not counted against it, and a closed stream frees its place.
func TestMaxPerAddress(t *testing.T) {
	const limit = 2
	b, bystander := hostileTarget(t, withConfig(func(c *Config) { c.MaxPerAddress = limit }))
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	dial := func() *rawPeer {
		d := net.Dialer{LocalAddr: from}
		conn, err := d.Dial("tcp", b.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(wait))
		p := &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.DefaultLimits)}
		p.write(headerString("y.test", "b.test"))
		if _, err := p.r.ReadHeader(); err != nil {
			t.Fatalf("our header: %v", err)
		}
		return p
	}
	var held []*rawPeer
	for range limit {
		p := dial()
		if _, err := p.r.Next(); err != nil { // features: accepted
			t.Fatal(err)
		}
		held = append(held, p)
	}
	over := dial()
	if cond := over.streamError(); cond != "policy-violation" {
		t.Fatalf("stream error %q", cond)
	}
	over.expectClosed()
	checkBystander(t, b, bystander, "after")

	// Close one stream cleanly; once b has closed its side, the place is
	// free again. b counts the stream out just after closing it, so the
	// next one may still be refused for a moment: try until accepted.
	held[0].write("</stream:stream>")
	if cond := held[0].streamError(); cond != "" {
		t.Fatalf("close: %q", cond)
	}
	for i := 0; ; i++ {
		p := dial()
		e, err := p.r.Next()
		if err == nil && e.Name.Local == "features" {
			break
		}
		if i == 1000 {
			t.Fatalf("never accepted again: %v", err)
		}
	}
}

// TestMaxIncoming: with MaxIncoming streams open, the listener accepts no
// more; the next peer is served once one closes.
func TestMaxIncoming(t *testing.T) {
	const limit = 2
	cl := &openListener{Listener: listen(t), accepts: make(chan struct{}, 10)}
	b := newNode(t, cl, []string{"b.test"}, nil, withConfig(func(c *Config) { c.MaxIncoming = limit }))
	var held []*rawPeer
	for range limit {
		p := dialHostile(t, b, headerString("y.test", "b.test"))
		held = append(held, p)
		<-cl.accepts
	}
	// The next connection completes in the kernel but is not served...
	waiting := dialHostile(t, b, "")
	waiting.write(headerString("y.test", "b.test"))
	// ...until a place frees.
	held[0].conn.Close()
	if _, err := waiting.r.ReadHeader(); err != nil {
		t.Fatalf("the waiting peer: %v", err)
	}
	<-cl.accepts
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.maxOpen > limit {
		t.Fatalf("%d connections open at once, limit %d", cl.maxOpen, limit)
	}
}

// addrListener reports the peers of the connections it accepts at the
// addresses given to next, as a proxy in front of the Manager would: the
// loopback has no IPv6 network to dial from.
type addrListener struct {
	net.Listener
	next chan netip.Addr
}

func (l *addrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &addrConn{Conn: c, remote: &net.TCPAddr{IP: (<-l.next).AsSlice(), Port: 40000}}, nil
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

// TestMaxPerAddressIPv6: the addresses of one IPv6 /64 are one address for
// MaxPerAddress, so a host cannot escape it by dialling from each of its
// 2^64 addresses; another /64 is counted apart.
func TestMaxPerAddressIPv6(t *testing.T) {
	const limit = 2
	ln := &addrListener{Listener: listen(t), next: make(chan netip.Addr, 1)}
	b := newNode(t, ln, []string{"b.test"}, nil, withConfig(func(c *Config) { c.MaxPerAddress = limit }))
	dial := func(from string) *rawPeer {
		ln.next <- netip.MustParseAddr(from)
		return dialHostile(t, b, headerString("y.test", "b.test"))
	}
	for i := range limit {
		p := dial(fmt.Sprintf("2001:db8:1:2::%x", i+1))
		if _, err := p.r.Next(); err != nil { // features: accepted
			t.Fatal(err)
		}
	}
	over := dial("2001:db8:1:2:ffff:ffff:ffff:ffff")
	if cond := over.streamError(); cond != "policy-violation" {
		t.Fatalf("a third address of the /64: stream error %q, want policy-violation", cond)
	}
	other := dial("2001:db8:1:3::1")
	if e, err := other.r.Next(); err != nil || e.Name.Local != "features" {
		t.Fatalf("another /64: %v %s", err, e.Raw)
	}
}
