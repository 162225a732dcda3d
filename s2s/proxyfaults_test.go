package s2s

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/internal/faultproxy"
)

// proxyFault is one way the network breaks a link under traffic, injected
// through a faultproxy between a.test's outgoing link and b.test.
type proxyFault struct {
	name   string
	inject func(p *faultproxy.Proxy) int // how many connections it hit
}

var proxyFaults = []proxyFault{
	// The peer's host vanished, or a NAT forgot the link: writes succeed
	// and nothing arrives, either way.
	{"half-open", (*faultproxy.Proxy).Silence},
	{"reset", (*faultproxy.Proxy).Reset},
	// 40 bytes go missing some way into what is being written: the peer
	// sees a broken stream (bad XML, or a TLS record that fails its MAC)
	// and ends it.
	{"drop-bytes", func(p *faultproxy.Proxy) int { return p.Drop(faultproxy.Up, 700, 40) }},
}

// proxyRun is the outcome of one run: per stanza id, how often it was
// written, delivered and bounced.
type proxyRun struct {
	n                           int
	written, delivered, bounced map[string]int
}

// account checks every stanza and returns the figures: each is bounced at
// most once; delivered ones were written; a stanza neither delivered nor
// bounced is lost (with XEP-0198 there must be none).
func (r proxyRun) account(t *testing.T) (delivered, bounced, lost, duplicates, both int) {
	t.Helper()
	for i := range r.n {
		id := strconv.Itoa(i)
		w, d, b := r.written[id], r.delivered[id], r.bounced[id]
		if b > 1 {
			t.Errorf("stanza %s bounced %d times", id, b)
		}
		if d > 0 && w == 0 {
			t.Errorf("stanza %s delivered but never written", id)
		}
		if d > 0 {
			delivered++
			duplicates += d - 1
		}
		if b > 0 {
			bounced++
		}
		if d > 0 && b > 0 {
			both++
		}
		if d == 0 && b == 0 {
			lost++
		}
	}
	return
}

// TestProxyFaults sends stanzas at a steady pace from a.test to b.test
// through a proxy that breaks the link halfway, and accounts for every
// one: delivered (once or more), bounced (once) or lost. Without XEP-0198
// the contract is "written or bounced", so stanzas written into a link
// that then broke may be lost; the test reports how many.
func TestProxyFaults(t *testing.T) {
	for i, f := range proxyFaults {
		t.Run(strconv.Itoa(i)+"-"+f.name, func(t *testing.T) {
			r := runProxyFault(t, f, nil)
			d, b, lost, dup, both := r.account(t)
			t.Logf("of %d: %d delivered (%d duplicates), %d bounced (%d of them delivered too), %d lost", r.n, d, dup, b, both, lost)
		})
	}
}

// runProxyFault runs n stanzas through the proxy, injecting the fault
// halfway, and returns the accounting once every stanza was written or
// bounced (done, when set, decides instead when the run is over).
func runProxyFault(t *testing.T, f proxyFault, done func(delivered, bounced map[string]int) bool, opts ...nodeOpt) proxyRun {
	lb, la := listen(t), listen(t)
	p, err := faultproxy.New(lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	log := newWriteLog()
	a := newNode(t, la, []string{"a.test"}, map[string]netip.AddrPort{"b.test": p.Addr()},
		append([]nodeOpt{withConfig(func(c *Config) { c.Observer = log.observe })}, opts...)...)
	b := newNode(t, lb, []string{"b.test"}, map[string]netip.AddrPort{"a.test": addrOf(la)}, opts...)

	const n, window = 1000, 50
	body := strings.Repeat("x", 200)
	r := proxyRun{n: n, delivered: map[string]int{}, bounced: map[string]int{}}
	progress := func() int {
		return len(log.snapshot()) + len(r.bounced)
	}
	drain := func(block bool) {
		if block {
			select {
			case bo := <-a.bounced:
				r.bounced[bo.Stanza.ID]++
			case s := <-b.delivered:
				r.delivered[s.ID]++
			case <-log.progress:
			case <-t.Context().Done():
			}
		}
		for {
			select {
			case bo := <-a.bounced:
				r.bounced[bo.Stanza.ID]++
			case s := <-b.delivered:
				r.delivered[s.ID]++
			default:
				return
			}
		}
	}
	for i := range n {
		// Steady traffic: at most window stanzas ahead of what was
		// written or bounced.
		for i-progress() > window {
			drain(true)
		}
		a.send(fmt.Sprintf(`<message from='a.test' to='b@b.test' id='%d'><body>%s</body></message>`, i, body))
		if i == n/2 {
			if hit := f.inject(p); hit == 0 {
				t.Fatalf("%s hit no connection", f.name)
			}
		}
		drain(false)
	}
	if done == nil {
		done = func(_, bounced map[string]int) bool { return len(log.snapshot())+len(bounced) >= n }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*wait)
	defer cancel()
	for !done(r.delivered, r.bounced) {
		select {
		case bo := <-a.bounced:
			r.bounced[bo.Stanza.ID]++
		case s := <-b.delivered:
			r.delivered[s.ID]++
		case <-log.progress:
		case <-ctx.Done():
			d, bo, lost, _, _ := r.account(t)
			t.Fatalf("not accounted after %v: %d delivered, %d bounced, %d neither, %d written", 2*wait, d, bo, lost, len(log.snapshot()))
		}
	}
	// Shut both down so that whatever is still on its way lands or
	// bounces, then count it.
	sctx, scancel := context.WithTimeout(context.Background(), wait)
	defer scancel()
	if err := a.m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := b.m.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	<-a.m.Done()
	drain(false)
	r.written = log.snapshot()
	return r
}
