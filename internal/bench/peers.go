package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/interop"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/starttls"
)

// The peer columns: the same load generator as the ours column (a Manager
// calling Send), but the receiving end is Prosody or ejabberd, started by
// the interop package's harness and switched to info logging. A peer
// answers our pings over its own outgoing link to us, so a ping round trip
// through a peer measures the peer's s2s in and out, with our Manager on
// both of the other ends: the same shape as the ours column, where the
// receiving Manager answers.

// Peer domains. They are not subdomains of senderZone, so the load
// generator's IsLocal never claims them.
const (
	prosodyDomain  = "prosody.bench"
	ejabberdDomain = "ejabberd.bench"
)

// peer is a running Prosody or ejabberd, as far as a load needs it.
type peer struct {
	name   string // column name: "Prosody", "ejabberd"
	domain string
	port   int
	stop   func() error
	// msgTo is an address where the peer drops a headline message without
	// answering: a user Prosody does not have, or ejabberd's own domain
	// (ejabberd bounces a headline to an unknown user, Prosody one to its
	// domain; RFC 6121 §8.5.2.2.1 and §8.4 leave both choices open).
	msgTo string
}

// startPeer starts Prosody (ejabberd false) or ejabberd for one TLS mode,
// routing our sending domain to ourPort, with logging at info.
func startPeer(ctx context.Context, e *env, ejabberd, tlsOn bool, ourPort int, log io.Writer) (*peer, error) {
	mode := "false"
	if tlsOn {
		mode = "required"
	}
	domain := prosodyDomain
	if ejabberd {
		domain = ejabberdDomain
	}
	leaf, err := e.ca.Leaf(testcert.Options{DNSNames: []string{domain}})
	if err != nil {
		return nil, err
	}
	routes := []interop.Route{{Domain: senderDomain(0), Host: "127.0.0.1", Port: ourPort}}
	sa := interop.NewStandalone(domain, log)
	p := &peer{domain: domain, stop: sa.Close}
	err = sa.Do(func(t testing.TB) {
		if ejabberd {
			p.name, p.msgTo = "ejabberd", domain
			ej := interop.StartEjabberd(t, interop.EjabberdConfig{
				Domain: domain, TLS: mode, CertPEM: leaf.PEM, Routes: routes,
			})
			p.port = ej.Port
			if err := ej.SetLogLevel(ctx, "info"); err != nil {
				t.Fatal(err)
			}
			return
		}
		p.name, p.msgTo = "Prosody", "romeo@"+domain
		c := interop.ProsodyConfig{Domain: domain, TLS: mode, Routes: routes}
		if tlsOn {
			c.CertPEM = leaf.PEM
		}
		pr := interop.StartProsody(t, c)
		p.port = pr.Port
		if err := pr.SetLogLevel(ctx, "info"); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		sa.Close()
		return nil, err
	}
	return p, nil
}

// peerLoad is the load generator against one peer: a Manager serving
// senderDomain(0), which sends to the peer and receives its answers.
type peerLoad struct {
	m      *s2s.Manager
	ln     net.Listener
	peer   string
	msgTo  string // where messages go: see peer.msgTo
	addr   netip.AddrPort
	on     atomic.Pointer[func(s2s.Stanza)]
	bounce atomic.Int64
	// lastBounce is the text of a recent bounce, so that a failed run
	// says why.
	lastBounce atomic.Pointer[string]
	// other counts stanzas from the peer that are not ping results (an
	// error answer to a message would be one): the load is wrong if any.
	other      atomic.Int64
	firstOther atomic.Pointer[s2s.Stanza]
}

// newPeerLoad starts the load generator's Manager on a loopback listener;
// the peer's address is set with target once the peer runs, since the
// peer's configuration needs our port first. dialbackOnly turns SASL
// EXTERNAL off, for peers that are compared on dialback.
func newPeerLoad(e *env, tlsOn, dialbackOnly bool) (*peerLoad, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &peerLoad{ln: ln}
	mode := "false"
	if tlsOn {
		mode = "required_trusted"
	}
	leaf, err := e.ca.Leaf(testcert.Options{DNSNames: []string{"*." + senderZone}})
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := config.Default()
	s.UseStartTLS = mode
	l.m, err = s2s.New(s2s.Config{
		S2S:     s,
		IsLocal: func(d string) bool { return strings.HasSuffix(d, "."+senderZone) },
		Deliver: func(st s2s.Stanza) {
			if h := l.on.Load(); h != nil {
				(*h)(st)
			}
		},
		Bounce: func(b s2s.Bounce) {
			l.bounce.Add(1)
			l.lastBounce.Store(&b.Text)
		},
		Logger:      slog.New(slog.DiscardHandler),
		RootCAs:     e.ca.Pool(),
		Certificate: starttls.StaticCert(leaf.TLS),
		Resolver:    l,
		QueueLength: 1 << 16,
		// Every peer and every dialback verification stream comes from
		// 127.0.0.1: the per-address bounds would refuse the load, not an
		// attacker (a thousand idle links over TCP failed their
		// verifications at the default bound).
		MaxPerAddress: -1,
		MaxIncoming:   -1,
		// Peers authenticate with dialback: the comparison is of one
		// authentication path, the one every peer speaks.
		DisableSASLExternal: dialbackOnly,
		// Each sending domain's link is a connection of its own, as in
		// the in-process pair (pair.go says why).
		DisablePiggyback: true,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	go l.m.Serve(ln)
	return l, nil
}

func (l *peerLoad) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// target points the load at a running peer.
func (l *peerLoad) target(p *peer) {
	l.peer, l.msgTo = p.domain, p.msgTo
	l.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.port))
}

// Resolve sends every lookup of the current peer's domain to its port.
func (l *peerLoad) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	if d != l.peer || !l.addr.IsValid() {
		return nil, fmt.Errorf("bench: %s: %w", d, resolver.ErrNotFound)
	}
	return []resolver.Target{{Host: d, Addr: l.addr}}, nil
}

func (l *peerLoad) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.m.Shutdown(ctx)
	l.ln.Close()
}

// check fails a run that lost stanzas or drew anything but ping results.
func (l *peerLoad) check() error {
	if n := l.bounce.Swap(0); n > 0 {
		return fmt.Errorf("bench: %d stanzas to %s bounced", n, l.peer)
	}
	if n := l.other.Swap(0); n > 0 {
		first := ""
		if st := l.firstOther.Swap(nil); st != nil {
			first = string(st.Raw)
		}
		return fmt.Errorf("bench: %s answered %d stanzas with something other than a ping result, first %s", l.peer, n, first)
	}
	return nil
}

// peerPing returns a ping to the peer and tells a result to it apart.
func (l *peerLoad) peerPing() []byte {
	return []byte("<iq from='" + senderDomain(0) + "' to='" + l.peer + "' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// peerMessage is the ~200-byte message of the ours column, as a headline
// to an address where the peer drops it without an answer (peer.msgTo): a
// chat message would draw an error stanza back and double the peer's work.
func (l *peerLoad) peerMessage() []byte {
	return []byte("<message from='juliet@" + senderDomain(0) + "/balcony' to='" + l.msgTo +
		"' type='headline' id='ktx72v49'><body>Art thou not Romeo, and a Montague? Wherefore art thou Romeo?</body></message>")
}

// acks counts ping results from the peer and signals each on a channel.
func (l *peerLoad) acks(ch chan<- struct{}) {
	f := func(st s2s.Stanza) {
		if st.Name == "iq" && st.Type == "result" {
			ch <- struct{}{}
			return
		}
		if l.other.Add(1) == 1 {
			l.firstOther.Store(&st)
		}
	}
	l.on.Store(&f)
}

// pings runs n pipelined pings with window outstanding and returns the
// time they took. The first ping brings up both links and is not timed.
func (l *peerLoad) pings(ctx context.Context, n, window int) (time.Duration, error) {
	ping := l.peerPing()
	acked := make(chan struct{}, window+1)
	l.acks(acked)
	if err := l.m.Send(ctx, ping); err != nil {
		return 0, err
	}
	if err := l.wait(ctx, acked, "warm-up ping"); err != nil {
		return 0, err
	}
	start := time.Now()
	out := 0
	for sent := 0; sent < n; sent++ {
		for out >= window {
			if err := l.wait(ctx, acked, "ping run"); err != nil {
				return 0, err
			}
			out--
		}
		if err := l.m.Send(ctx, ping); err != nil {
			return 0, err
		}
		out++
	}
	for ; out > 0; out-- {
		if err := l.wait(ctx, acked, "ping run"); err != nil {
			return 0, err
		}
	}
	return time.Since(start), l.check()
}

// pingFrom sends one ping from senderDomain(i) and waits for its result.
func (l *peerLoad) pingFrom(ctx context.Context, i int, acked <-chan struct{}) error {
	ping, _ := pingFor(senderDomain(i))
	if err := l.m.Send(ctx, ping); err != nil {
		return err
	}
	return l.wait(ctx, acked, "warm-up ping")
}

// messageBatch is how many messages one ping acknowledges: a peer
// handles a stream's stanzas in order, so the ping's result says every
// message before it was processed.
const messageBatch = 1000

// messages sends n messages with a ping after every messageBatch, keeping
// at most window messages unacknowledged, and returns the time until the
// last ping's result.
func (l *peerLoad) messages(ctx context.Context, n, window int) (time.Duration, error) {
	ping, msg := l.peerPing(), l.peerMessage()
	pingsOut := max(window/messageBatch, 1)
	acked := make(chan struct{}, pingsOut+1)
	l.acks(acked)
	if err := l.m.Send(ctx, ping); err != nil {
		return 0, err
	}
	if err := l.wait(ctx, acked, "warm-up ping"); err != nil {
		return 0, err
	}
	start := time.Now()
	out := 0
	for sent := 0; sent < n; {
		for out >= pingsOut {
			if err := l.wait(ctx, acked, "message run"); err != nil {
				return 0, err
			}
			out--
		}
		for i := 0; i < messageBatch && sent < n; i++ {
			if err := l.m.Send(ctx, msg); err != nil {
				return 0, err
			}
			sent++
		}
		if err := l.m.Send(ctx, ping); err != nil {
			return 0, err
		}
		out++
	}
	for ; out > 0; out-- {
		if err := l.wait(ctx, acked, "message run"); err != nil {
			return 0, err
		}
	}
	return time.Since(start), l.check()
}

// wait takes one acknowledgement, or fails after a deadline that catches
// a lost stanza instead of hanging the harness.
func (l *peerLoad) wait(ctx context.Context, acked <-chan struct{}, what string) error {
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	select {
	case <-acked:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		last := ""
		if t := l.lastBounce.Load(); t != nil {
			last = ", last: " + *t
		}
		return fmt.Errorf("bench: %s to %s did not complete (%d bounced, %d unexpected answers%s)",
			what, l.peer, l.bounce.Load(), l.other.Load(), last)
	}
}

// peerColumns measures each peer for one TLS mode and fills its column of
// rows (by row name): messages and each ping window.
func peerColumns(ctx context.Context, e *env, c Config, tlsOn bool, rows []Row) error {
	for _, ejabberd := range []bool{false, true} {
		if err := peerColumn(ctx, e, c, tlsOn, ejabberd, rows); err != nil {
			return err
		}
	}
	return nil
}

func peerColumn(ctx context.Context, e *env, c Config, tlsOn, ejabberd bool, rows []Row) error {
	l, err := newPeerLoad(e, tlsOn, true)
	if err != nil {
		return err
	}
	defer l.close()
	p, err := startPeer(ctx, e, ejabberd, tlsOn, l.port(), c.PeerLog)
	if err != nil {
		return err
	}
	defer p.stop()
	l.target(p)
	set := func(name string, v float64) {
		for i := range rows {
			if rows[i].Name == name {
				if ejabberd {
					rows[i].Ejabberd = v
				} else {
					rows[i].Prosody = v
				}
			}
		}
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "%s: %s %s\n", name, p.name, num(v))
		}
	}
	var msgs []float64
	for range c.Runs {
		d, err := l.messages(ctx, c.PeerMessages, c.MessageWindow)
		if err != nil {
			return fmt.Errorf("%s messages over %s: %w", p.name, tlsName(tlsOn), err)
		}
		msgs = append(msgs, float64(c.PeerMessages)/d.Seconds())
	}
	set("messages, one link, "+tlsName(tlsOn), median(msgs))
	for _, w := range c.Windows {
		var rt []float64
		for range c.Runs {
			d, err := l.pings(ctx, c.PeerPings, w)
			if err != nil {
				return fmt.Errorf("%s pings over %s: %w", p.name, tlsName(tlsOn), err)
			}
			rt = append(rt, float64(c.PeerPings)/d.Seconds())
		}
		set(fmt.Sprintf("pings, window %d, %s", w, tlsName(tlsOn)), median(rt))
	}
	return nil
}
