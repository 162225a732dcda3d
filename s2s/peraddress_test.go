package s2s

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/xmpp-s2s/federation/config"
	"time"
)

// TestMaxPerAddressManyDomains: a peer hosting many domains behind one
// address opens one stream per domain pair, all from that address, at
// once; with the default MaxPerAddress every one is accepted. It also
// measures what such a peer (our own Manager) opens: one incoming stream
// per pair.
func TestMaxPerAddressManyDomains(t *testing.T) {
	const domains = DefaultMaxPerAddress + 20
	la, lb := listen(t), listen(t)
	var names []string
	toA := map[string]netip.AddrPort{}
	for i := range domains {
		d := fmt.Sprintf("d%d.test", i)
		names = append(names, d)
		toA[d] = addrOf(la)
	}
	// The initiator is given all the time it needs: this test is about
	// what b admits, on a machine that may be slow.
	a := newNode(t, la, names, map[string]netip.AddrPort{"b.test": addrOf(lb)},
		withS2S(func(s *config.S2S) { s.Outgoing.ConnectionTimeout = 0 }))
	b := newNode(t, lb, []string{"b.test"}, toA) // MaxPerAddress left at its default
	for i, d := range names {
		a.send(fmt.Sprintf(`<message from='u@%s' to='v@b.test' id='m%d'/>`, d, i))
	}
	seen := map[string]bool{}
	for range domains {
		select {
		case s := <-b.delivered:
			seen[s.ID] = true
		case bo := <-a.bounced:
			t.Fatalf("%s bounced: %s: %s", bo.Stanza.ID, bo.Condition, bo.Text)
		case <-time.After(wait):
			t.Fatalf("%d of %d delivered", len(seen), domains)
		}
	}
	if len(seen) != domains {
		t.Fatalf("%d distinct stanzas delivered, want %d", len(seen), domains)
	}
	in := 0
	for _, l := range b.m.Links() {
		if l.Direction == Incoming {
			in++
		}
	}
	t.Logf("a peer with %d domains writing to one of ours opened %d incoming streams from one address", domains, in)
	if in != domains {
		t.Errorf("%d incoming links, want one per pair (%d)", in, domains)
	}
}

// TestMaxPerAddressBeforeHeader: connections that send no header count per
// address alone, so that holding them open is bounded too.
func TestMaxPerAddressBeforeHeader(t *testing.T) {
	const limit = 2
	b, bystander := hostileTarget(t, withConfig(func(c *Config) { c.MaxPerAddress = limit }))
	for range limit {
		dialHostile(t, b, "")
	}
	// Each connection is counted by its own goroutine: wait until both
	// are, by looking at the count itself.
	k := addrKey{ip: netip.MustParseAddr("127.0.0.1")}
	deadline := time.Now().Add(wait)
	for {
		b.m.addrs.mu.Lock()
		n := b.m.addrs.n[k]
		b.m.addrs.mu.Unlock()
		if n == limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d silent connections counted, want %d", n, limit)
		}
		runtime.Gosched()
	}
	over := dialHostile(t, b, "")
	if _, err := over.r.ReadHeader(); err != nil {
		t.Fatalf("our header: %v", err)
	}
	if cond := over.streamError(); cond != "policy-violation" {
		t.Fatalf("a connection over the bound got %q", cond)
	}
	checkBystander(t, b, bystander, "after")
}
