package s2s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

const (
	msgAB = `<message from='alice@a.test/x' to='bob@b.test' id='m1' type='chat'><body>hi</body></message>`
	msgBA = `<message from='bob@b.test' to='alice@a.test/x' id='m2'><body>hello</body></message>`
)

func TestMessageBothWays(t *testing.T) {
	for i, mode := range []string{"false", "optional", "required", "required_trusted"} {
		t.Run(strconv.Itoa(i)+"-"+mode, func(t *testing.T) {
			a, b := pairNodes(t, []nodeOpt{withMode(mode)}, []nodeOpt{withMode(mode)})
			a.send(msgAB)
			got := b.nextDelivered()
			if got.From != "alice@a.test/x" || got.To != "bob@b.test" || got.ID != "m1" || got.Name != "message" {
				t.Fatalf("delivered %+v", got)
			}
			if !strings.Contains(string(got.Raw), "<body>hi</body>") {
				t.Fatalf("delivered raw %s", got.Raw)
			}
			b.send(msgBA)
			if got := a.nextDelivered(); got.ID != "m2" {
				t.Fatalf("delivered %+v", got)
			}
			// a counts m1 once the write returned, which may be after b's
			// answer arrived over the same stream.
			waitEvent(t, a, StanzaOut)
			links := a.m.Links()
			if len(links) != 2 || links[0].Direction != Outgoing || links[1].Direction != Incoming {
				t.Fatalf("a links = %+v", links)
			}
			for _, l := range links {
				if l.Local != "a.test" || l.Remote != "b.test" {
					t.Errorf("link %+v", l)
				}
				wantTLS := mode != "false"
				if (l.TLSVersion != 0) != wantTLS || l.Auth != AuthDialback {
					t.Errorf("link %+v: tls=%s auth=%s", l, l.TLS(), l.Auth)
				}
			}
			if links[0].StanzasOut != 1 || links[1].StanzasIn != 1 {
				t.Errorf("counts: out %d in %d", links[0].StanzasOut, links[1].StanzasIn)
			}
		})
	}
}

// TestModeMatrix sends from a.test (outgoing mode) to b.test (incoming
// mode) for every pair of the four use_starttls modes.
func TestModeMatrix(t *testing.T) {
	modes := []string{"false", "optional", "required", "required_trusted"}
	for _, out := range modes {
		for _, in := range modes {
			t.Run(out+"->"+in, func(t *testing.T) {
				t.Parallel()
				a, b := pairNodes(t, []nodeOpt{withMode(out)}, []nodeOpt{withMode(in)})
				a.send(msgAB)
				fails := out == "false" && (in == "required" || in == "required_trusted") ||
					in == "false" && (out == "required" || out == "required_trusted")
				if fails {
					bo := a.nextBounce()
					if bo.Condition != stanza.RemoteServerNotFound || !strings.Contains(bo.Text, "STARTTLS") {
						t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
					}
					if len(b.m.Links()) != 0 {
						t.Fatalf("b has links %+v", b.m.Links())
					}
					return
				}
				b.nextDelivered()
				l := outgoing(a.m.Links())
				if len(l) != 1 {
					t.Fatalf("links %+v", l)
				}
				if wantTLS := out != "false" && in != "false"; (l[0].TLSVersion != 0) != wantTLS {
					t.Fatalf("TLS %s, want TLS %v", l[0].TLS(), wantTLS)
				}
			})
		}
	}
}

// TestTrustedCertificateRefused: with required_trusted, a peer whose
// certificate does not name it is refused, and the bounce says why.
func TestTrustedCertificateRefused(t *testing.T) {
	wrong, err := testCA().Leaf(testcert.Options{DNSNames: []string{"other.test"}})
	if err != nil {
		t.Fatal(err)
	}
	selfSigned, err := testcert.SelfSigned(testcert.Options{DNSNames: []string{"b.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		cert *testcert.Leaf
		want string
	}{
		{wrong, "does not name"},
		{selfSigned, "not trusted"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			a, b := pairNodes(t, []nodeOpt{withMode("required_trusted")}, []nodeOpt{withMode("required"), withConfig(func(c *Config) {
				c.Certificate = starttls.StaticCert(tc.cert.TLS)
			})})
			a.send(msgAB)
			bo := a.nextBounce()
			if bo.Condition != stanza.RemoteServerNotFound || !strings.Contains(bo.Text, tc.want) {
				t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
			}
			if len(b.m.Links()) != 0 {
				t.Fatal("b has links")
			}
		})
	}
}

// randomKeys makes a new key for every question, so the keys it presents
// are never the ones its authoritative side confirms.
type randomKeys struct{}

func (randomKeys) Key(_, _, _ string) (string, error) {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]), nil
}

func TestDialbackInvalidKey(t *testing.T) {
	a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) { c.Keys = randomKeys{} })}, nil)
	a.send(msgAB)
	bo := a.nextBounce()
	if bo.Condition != stanza.RemoteServerNotFound || !strings.Contains(bo.Text, "key not valid") {
		t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
	}
	if len(b.m.Links()) != 0 || len(a.m.Links()) != 0 {
		t.Fatal("links after an invalid key")
	}
}

func TestPolicyDeny(t *testing.T) {
	deny := func(host string) nodeOpt {
		return withS2S(func(s *config.S2S) {
			s.DefaultPolicy = "allow"
			s.HostPolicy = []config.HostPolicy{{Host: host, Policy: "deny"}}
		})
	}
	t.Run("outgoing", func(t *testing.T) {
		a, b := pairNodes(t, []nodeOpt{deny("b.test")}, nil)
		a.send(msgAB)
		bo := a.nextBounce()
		if bo.Condition != stanza.PolicyViolation || !strings.Contains(bo.Text, "b.test") {
			t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
		}
		if len(a.m.Links())+len(b.m.Links()) != 0 {
			t.Fatal("a link was opened")
		}
	})
	t.Run("incoming", func(t *testing.T) {
		a, b := pairNodes(t, nil, []nodeOpt{deny("a.test")})
		a.send(msgAB)
		bo := a.nextBounce()
		if !strings.Contains(bo.Text, "policy-violation") {
			t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
		}
		if len(a.m.Links())+len(b.m.Links()) != 0 {
			t.Fatal("a link was opened")
		}
	})
	t.Run("default deny, host allowed", func(t *testing.T) {
		allow := withS2S(func(s *config.S2S) {
			s.DefaultPolicy = "deny"
			s.HostPolicy = []config.HostPolicy{{Host: "a.test", Policy: "allow"}, {Host: "b.test", Policy: "allow"}}
		})
		a, b := pairNodes(t, []nodeOpt{allow}, []nodeOpt{allow})
		a.send(msgAB)
		b.nextDelivered()
	})
}

func TestBounceNotFoundAndTimeout(t *testing.T) {
	// A port with nothing listening: refused at once.
	refused := listen(t)
	refusedAddr := addrOf(refused)
	refused.Close()
	// A listener that accepts and never speaks: the negotiation stalls.
	stall := stallListener(t)

	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{
		"refused.test": refusedAddr,
		"stall.test":   addrOf(stall),
	}, withConfig(func(c *Config) { c.NegotiationTimeout = 300 * time.Millisecond }))

	a.send(`<message from='a.test' to='x@refused.test' id='r'/>`)
	bo := a.nextBounce()
	if bo.Condition != stanza.RemoteServerNotFound || !strings.Contains(bo.Text, "refused.test") || !strings.Contains(bo.Text, "refused") {
		t.Fatalf("refused: bounce %s: %s", bo.Condition, bo.Text)
	}
	if bo.Stanza.ID != "r" {
		t.Fatalf("bounced %+v", bo.Stanza)
	}
	reply := string(bo.Reply())
	for _, want := range []string{"from='x@refused.test'", "to='a.test'", "id='r'", "type='error'", "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"} {
		if !strings.Contains(reply, want) {
			t.Errorf("Reply() = %s, missing %s", reply, want)
		}
	}

	a.send(`<message from='a.test' to='x@stall.test' id='s'/>`)
	bo = a.nextBounce()
	if bo.Condition != stanza.RemoteServerTimeout || !strings.Contains(bo.Text, "stall.test") {
		t.Fatalf("stall: bounce %s: %s", bo.Condition, bo.Text)
	}
}

func TestErrorStanzasNeverBounced(t *testing.T) {
	refused := listen(t)
	addr := addrOf(refused)
	refused.Close()
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"refused.test": addr})
	a.send(`<message from='a.test' to='x@refused.test' id='e' type='error'/>`)
	a.send(`<message from='a.test' to='x@refused.test' id='n'/>`)
	if bo := a.nextBounce(); bo.Stanza.ID != "n" {
		t.Fatalf("bounced %+v", bo.Stanza)
	}
	select {
	case bo := <-a.bounced:
		t.Fatalf("also bounced %+v", bo.Stanza)
	default:
	}
}

func TestRetryDelayDoubles(t *testing.T) {
	refused := listen(t)
	addr := addrOf(refused)
	refused.Close()
	clk := newFakeClock()
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"refused.test": addr},
		withS2S(func(s *config.S2S) { s.MaxRetryDelay = 5 * time.Second }),
		withConfig(func(c *Config) { c.clock = clk }))

	msg := func(id int) string { return fmt.Sprintf(`<message from='a.test' to='x@refused.test' id='%d'/>`, id) }
	id := 0
	// expectAttempt sends a stanza that triggers an attempt (which fails),
	// then one that is bounced at once because of the wait, naming it.
	expectAttempt := func(wantDelay time.Duration) {
		t.Helper()
		id++
		a.send(msg(id))
		if bo := a.nextBounce(); !strings.Contains(bo.Text, "refused") || strings.Contains(bo.Text, "next attempt") {
			t.Fatalf("attempt: bounce %s", bo.Text)
		}
		id++
		a.send(msg(id))
		bo := a.nextBounce()
		if want := "next attempt in " + wantDelay.String(); !strings.Contains(bo.Text, want) {
			t.Fatalf("waiting: bounce %q, want %q", bo.Text, want)
		}
		// Just before the delay ends, still waiting.
		clk.Advance(wantDelay - time.Millisecond)
		id++
		a.send(msg(id))
		if bo := a.nextBounce(); !strings.Contains(bo.Text, "next attempt in 1ms") {
			t.Fatalf("before delay: bounce %q", bo.Text)
		}
		clk.Advance(time.Millisecond)
	}
	expectAttempt(1 * time.Second)
	expectAttempt(2 * time.Second)
	expectAttempt(4 * time.Second)
	expectAttempt(5 * time.Second) // capped by max_retry_delay
	expectAttempt(5 * time.Second)
}

func TestRetryWaitEndsWhenPeerComesBack(t *testing.T) {
	clk := newFakeClock()
	// b.test is not served at first: its Manager answers host-unknown.
	var bUp atomic.Bool
	a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) { c.clock = clk })},
		[]nodeOpt{withConfig(func(c *Config) { c.IsLocal = func(d string) bool { return d == "b.test" && bUp.Load() } })})
	a.send(msgAB)
	if bo := a.nextBounce(); !strings.Contains(bo.Text, "host-unknown") {
		t.Fatalf("bounce %q", bo.Text)
	}
	a.send(msgAB)
	if bo := a.nextBounce(); !strings.Contains(bo.Text, "next attempt") {
		t.Fatalf("bounce %q", bo.Text)
	}
	// b.test comes back and links to a first.
	bUp.Store(true)
	b.send(msgBA)
	a.nextDelivered()
	// Without advancing the clock, a's wait is over.
	a.send(msgAB)
	b.nextDelivered()
}

func TestQueueFull(t *testing.T) {
	stall := listen(t)
	go func() {
		c, err := stall.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { stall.Close() })
	a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"stall.test": addrOf(stall)},
		withConfig(func(c *Config) { c.QueueLength = 2 }),
		withConfig(func(c *Config) { c.NegotiationTimeout = 2 * time.Second }))
	for i := range 3 {
		a.send(fmt.Sprintf(`<message from='a.test' to='x@stall.test' id='%d'/>`, i))
	}
	bo := a.nextBounce()
	if bo.Condition != stanza.ResourceConstraint || bo.Stanza.ID != "2" || !strings.Contains(bo.Text, "full") {
		t.Fatalf("bounce %s %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
	}
	// The two queued ones are bounced when the attempt times out.
	for range 2 {
		if bo := a.nextBounce(); bo.Condition != stanza.RemoteServerTimeout {
			t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
		}
	}
}

func TestIdleClose(t *testing.T) {
	clk := newFakeClock()
	a, b := pairNodes(t, []nodeOpt{withConfig(func(c *Config) { c.clock = clk; c.IdleTimeout = time.Minute })}, nil)
	a.send(msgAB)
	b.nextDelivered()
	waitEvent(t, a, LinkUp)
	// The fake clock jumps a minute in a moment: let b's acknowledgement
	// (XEP-0198) arrive first, or the keepalive would find it a minute
	// late and the link dead.
	waitAcked(t, a)
	clk.Advance(30 * time.Second)
	if len(outgoing(a.m.Links())) != 1 {
		t.Fatal("link closed early")
	}
	clk.Advance(31 * time.Second)
	e := waitEvent(t, a, LinkDown)
	if e.Link.Direction != Outgoing || e.Err != ErrIdle {
		t.Fatalf("link down %+v: %v", e.Link, e.Err)
	}
	// A new stanza opens a new link.
	a.send(msgAB)
	b.nextDelivered()
}

func waitEvent(t *testing.T, n *node, kind EventKind) Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-n.events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

// TestSendSpellings: Send takes the domains of a stanza in any spelling
// to the link of their normal form, before and after a Send that wrote
// them so (which skips checking them again), and refuses a domain that
// has none, whatever link the last Send used.
func TestSendSpellings(t *testing.T) {
	a, b := pairNodes(t, nil, nil)
	for i, env := range []string{
		"from='alice@a.test' to='bob@b.test'",
		"from='alice@A.Test' to='bob@B.TEST.'",
		"from='alice@a.test' to='bob@b.test'",
		"from='a.test' to='b.test'",
		"from='alice@a.test.' to='bob@b.test/r'",
	} {
		id := fmt.Sprint("s", i)
		a.send("<message " + env + " id='" + id + "'/>")
		if got := b.nextDelivered(); got.ID != id {
			t.Fatalf("%s: delivered %q", env, got.ID)
		}
	}
	// (A write is counted in StanzasOut once it returned, which may be
	// after the peer read it.)
	waitLinks(t, a, "one link, five stanzas", func(ls []LinkInfo) bool {
		out := outgoing(ls)
		return len(out) == 1 && out[0].Local == "a.test" && out[0].Remote == "b.test" && out[0].StanzasOut == 5
	})
	for _, env := range []string{"from='alice@a.test' to='bob@b..test'", "from='alice@a..test' to='bob@b.test'"} {
		err := a.m.Send(context.Background(), []byte("<message "+env+" id='bad'/>"))
		if !errors.Is(err, ErrNotStanza) {
			t.Errorf("%s: Send = %v, want ErrNotStanza", env, err)
		}
	}
}
