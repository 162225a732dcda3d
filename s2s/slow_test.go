package s2s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/dialback"
	"github.com/xmpp-s2s/federation/internal/wire"
)

// dribble writes s one byte per tick until it is all out or the connection
// fails: a slowloris peer. It returns when done.
func dribble(conn net.Conn, s string, every time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < len(s); i++ {
			<-tick.C
			if _, err := conn.Write([]byte{s[i]}); err != nil {
				return
			}
		}
	}()
	return done
}

// TestSlowloris: peers that trickle bytes never finish negotiating within
// NegotiationTimeout (MongooseIM's state_timeout) and are cut off with
// connection-timeout, however steadily they trickle; the bystander's
// authenticated stream, past negotiation, is not.
func TestSlowloris(t *testing.T) {
	b, bystander := hostileTarget(t, withConfig(func(c *Config) { c.NegotiationTimeout = 300 * time.Millisecond }))
	hdr := headerString("y.test", "b.test")
	for i, tc := range []struct {
		header string // sent at once
		slow   string // then trickled
	}{
		{"", hdr},
		{hdr, strings.Repeat(" ", 10000)}, // whitespace keepalives
		{hdr, "<db:result from='y.test' to='b.test'>" + strings.Repeat("0", 10000)},
		{hdr, "<message from='a@y.test' to='b@b.test'><body>" + strings.Repeat("z", 10000)},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			p := dialHostile(t, b, "")
			p.write(tc.header)
			done := dribble(p.conn, tc.slow, 5*time.Millisecond)
			defer func() { p.conn.Close(); <-done }()
			if _, err := p.r.ReadHeader(); err != nil {
				t.Fatalf("our header: %v", err)
			}
			if cond := p.streamError(); cond != "connection-timeout" {
				t.Fatalf("stream error %q", cond)
			}
			p.expectClosed()
			checkBystander(t, b, bystander, "after-"+strconv.Itoa(i))
		})
	}
}

// deafPeer is a remote server that accepts our dialback request without
// checking it and then never reads again: its window fills and our writes
// block.
type deafPeer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newDeafPeer(t *testing.T, domain string) *deafPeer {
	d := &deafPeer{ln: listen(t)}
	go func() {
		for {
			conn, err := d.ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.conns = append(d.conns, conn)
			d.mu.Unlock()
			go d.serve(conn, domain)
		}
	}()
	t.Cleanup(func() {
		d.ln.Close()
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, c := range d.conns {
			c.Close()
		}
	})
	return d
}

func (d *deafPeer) serve(conn net.Conn, domain string) {
	r := wire.NewReader(conn, wire.DefaultLimits)
	h, err := r.ReadHeader()
	if err != nil {
		return
	}
	wire.WriteHeader(conn, wire.Header{From: domain, To: h.From, ID: newStreamID()})
	wire.WriteFeatures(conn, dialbackFeature)
	e, err := r.Next()
	if err != nil {
		return
	}
	fmt.Fprintf(conn, "<db:result from='%s' to='%s' type='valid'/>", domain, e.From)
	// Deaf from here on: the connection stays open, unread.
}

// TestPeerNeverReads: a peer that stops reading makes our writes time out
// (WriteTimeout); what was being written is bounced with
// remote-server-timeout, nothing is held for ever, and every stanza is
// written or bounced exactly once.
func TestPeerNeverReads(t *testing.T) {
	deaf := newDeafPeer(t, "deaf.test")
	log := newWriteLog()
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"deaf.test": addrOf(deaf.ln)},
		withConfig(func(c *Config) {
			c.WriteTimeout = 200 * time.Millisecond
			c.QueueLength = 100000
			c.Observer = log.observe
		}))
	const n = 1000 // 16 MB: more than loopback buffers hold
	body := strings.Repeat("x", 16<<10)
	for i := range n {
		a.send(fmt.Sprintf(`<message from='a.test' to='u@deaf.test' id='%d'><body>%s</body></message>`, i, body))
	}
	timeouts := 0
	bounced := log.await(t, a, n, 2*wait, func(bo Bounce) {
		if bo.Condition == stanza.RemoteServerTimeout {
			timeouts++
		}
	})
	if timeouts == 0 {
		t.Fatal("nothing bounced with remote-server-timeout")
	}
	written := log.snapshot()
	for i := range n {
		id := strconv.Itoa(i)
		if written[id]+bounced[id] != 1 {
			t.Fatalf("stanza %s: written %d, bounced %d", id, written[id], bounced[id])
		}
	}
	t.Logf("of %d: %d written (lost in the deaf peer's buffers), %d bounced", n, len(written), len(bounced))
}

// TestIncomingNeverReads: a peer that floods <db:verify> and never reads the
// answers is cut off by WriteTimeout; the stream's goroutine does not stay
// blocked, and the bystander carries on.
func TestIncomingNeverReads(t *testing.T) {
	// b's kernel send buffer is made small, as is our receive buffer: with
	// the kernel's autotuning, b had to answer some 30,000 requests (4 MB)
	// before a write could block, which under -race on a loaded machine
	// took longer than the test's wait.
	la, lb := listen(t), &smallSendListener{Listener: listen(t)}
	peers := map[string]netip.AddrPort{"x.test": addrOf(la), "y.test": addrOf(la)}
	newNode(t, la, []string{"x.test", "y.test"}, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withConfig(func(c *Config) { c.Keys = dialback.Secret(rawSecret) }))
	b := newNode(t, lb, []string{"b.test"}, peers, withHostileLimits(),
		withConfig(func(c *Config) { c.WriteTimeout = 200 * time.Millisecond }))
	bystander := dialRaw(t, b, "x.test", "b.test")
	if typ := bystander.result(rawSecret, "x.test", "b.test"); typ != dialback.Valid {
		t.Fatalf("bystander dialback %q", typ)
	}
	p := dialRaw(t, b, "y.test", "b.test")
	p.conn.(*net.TCPConn).SetReadBuffer(4096)
	verify := fmt.Sprintf("<db:verify from='y.test' to='b.test' id='%s'>%s</db:verify>", p.id, strings.Repeat("ab", 32))
	flood := strings.Repeat(verify, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if _, err := io.WriteString(p.conn, flood); err != nil {
				stopped <- err
				return
			}
		}
		stopped <- ctx.Err()
	}()
	// b ends the stream: our flood of writes fails once it has closed.
	select {
	case err := <-stopped:
		if !errors.Is(err, net.ErrClosed) && !isReset(err) && !strings.Contains(err.Error(), "broken pipe") {
			t.Fatalf("flood ended with %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the deaf flooder was never cut off")
	}
	checkBystander(t, b, bystander, "after")
}

// smallSendListener gives the connections it accepts a small kernel send
// buffer, so that a peer that does not read blocks our writes early.
type smallSendListener struct{ net.Listener }

func (l *smallSendListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}
