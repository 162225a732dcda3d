package s2s

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/resolver"
	"github.com/xmpp-s2s/federation/starttls"
)

// TestFailureTable checks rows of the README's "When something fails" table
// that no other test pins: the bounce condition, what the error wraps, and
// the LinkFailed event of the same attempt.
func TestFailureTable(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln := listen(t)
		addr := addrOf(ln)
		ln.Close()
		a := newNode(t, listen(t), []string{"a.test"}, map[string]netip.AddrPort{"b.test": addr})
		a.send(msgAB)
		bo := a.nextBounce()
		if bo.Condition != stanza.RemoteServerNotFound || !errors.Is(bo.Err, resolver.ErrUnreachable) || !errors.Is(bo.Err, syscall.ECONNREFUSED) {
			t.Errorf("bounce %s: %v", bo.Condition, bo.Err)
		}
		if e := waitEvent(t, a, LinkFailed); e.Link.Direction != Outgoing || !errors.Is(e.Err, resolver.ErrUnreachable) || StepOf(e.Err) != StepConnect {
			t.Errorf("LinkFailed %+v: %v (step %s)", e.Link, e.Err, StepOf(e.Err))
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		// b presents a certificate from a CA a does not trust.
		other, err := testcert.NewCA("untrusted CA")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := other.Leaf(testcert.Options{DNSNames: []string{"b.test"}})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := pairNodes(t, []nodeOpt{withMode("required_trusted")},
			[]nodeOpt{withMode("required_trusted"), withConfig(func(c *Config) { c.Certificate = starttls.StaticCert(leaf.TLS) })})
		a.send(msgAB)
		bo := a.nextBounce()
		if bo.Condition != stanza.RemoteServerNotFound || !errors.Is(bo.Err, starttls.ErrUntrusted) {
			t.Errorf("bounce %s: %v", bo.Condition, bo.Err)
		}
		if e := waitEvent(t, a, LinkFailed); !errors.Is(e.Err, starttls.ErrUntrusted) || StepOf(e.Err) != StepTLS {
			t.Errorf("LinkFailed: %v (step %s)", e.Err, StepOf(e.Err))
		}
	})
}
