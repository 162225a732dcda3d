package s2s

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/internal/testcert"
	"github.com/xmpp-s2s/federation/starttls"
)

// BenchmarkDomainPairs measures what issue 16 is about: two servers, one
// hosting n domains and the other m, exchange a message in each of the
// 2·n·m (sender, receiver) combinations over TLS (dialback, with XEP-0198
// as by default), and then stay up. Reported per run: the TCP connections
// left open between them (verification-only connections closed), and the
// heap and stacks the two Managers hold for them, with each pair and
// direction on its own connection ("separate": bidi and piggybacking
// off), with bidi alone ("bidi": one connection per pair), and with both
// ("shared": the defaults). Run it with -benchtime=1x; BENCHMARKS.md has
// the figures.
func BenchmarkDomainPairs(b *testing.B) {
	for _, nm := range [][2]int{{2, 2}, {5, 5}, {10, 10}} {
		for _, mode := range []string{"separate", "bidi", "shared"} {
			b.Run(fmt.Sprintf("%dx%d/%s", nm[0], nm[1], mode), func(b *testing.B) {
				for b.Loop() {
					conns, heap := domainPairs(b, nm[0], nm[1], mode != "separate", mode == "shared")
					b.ReportMetric(float64(conns), "conns")
					b.ReportMetric(float64(heap)/1024, "heap-KiB")
				}
			})
		}
	}
}

// domainPairs runs one exchange and returns the connections open at its
// end and the heap and stacks it added, both Managers together.
func domainPairs(b *testing.B, n, m int, bidi, piggyback bool) (conns int, heap uint64) {
	base := memInUse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names := func(prefix string, k int) []string {
		var d []string
		for i := range k {
			d = append(d, fmt.Sprintf("%s%d.test", prefix, i))
		}
		return d
	}
	as, bs := names("a", n), names("b", m)
	la, lb := &openListener{Listener: listenB(b), closed: make(chan struct{}, 10*n*m)}, &openListener{Listener: listenB(b), closed: make(chan struct{}, 10*n*m)}
	delivered := make(chan Stanza, 2*n*m)
	start := func(ln *openListener, own, peers []string, peer netip.AddrPort) *Manager {
		s := config.Default()
		s.UseStartTLS = "required"
		for _, d := range peers {
			s.Address = append(s.Address, config.Address{Host: d, IP: peer.Addr(), Port: int(peer.Port())})
		}
		leaf, err := testCA().Leaf(testcert.Options{DNSNames: own})
		if err != nil {
			b.Fatal(err)
		}
		local := map[string]bool{}
		for _, d := range own {
			local[d] = true
		}
		mgr, err := New(Config{
			S2S: s, IsLocal: func(d string) bool { return local[d] },
			Deliver:             func(s Stanza) { delivered <- s },
			Bounce:              func(bo Bounce) { b.Errorf("bounced %s: %s", bo.Condition, bo.Text) },
			Certificate:         starttls.StaticCert(leaf.TLS),
			RootCAs:             testCA().Pool(),
			Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
			DisableSASLExternal: true,
			DisableBidi:         !bidi,
			DisablePiggyback:    !piggyback,
		})
		if err != nil {
			b.Fatal(err)
		}
		go mgr.Serve(ln)
		return mgr
	}
	ma := start(la, as, bs, addrOf(lb))
	mb := start(lb, bs, as, addrOf(la))
	send := func(mgr *Manager, from, to string) {
		if err := mgr.Send(ctx, []byte("<message from='u@"+from+"' to='v@"+to+"'><body>hello</body></message>")); err != nil {
			b.Fatal(err)
		}
		select {
		case <-delivered:
		case <-ctx.Done():
			b.Fatalf("%s to %s not delivered", from, to)
		}
	}
	for _, a := range as {
		for _, d := range bs {
			send(ma, a, d)
		}
	}
	for _, d := range bs {
		for _, a := range as {
			send(mb, d, a)
		}
	}
	// The connections that carry pairs are the distinct streams a's links
	// are on (each carries at least one of a's pairs); those that only
	// verified a key close once answered: wait for them.
	streams := map[uint64]bool{}
	for _, l := range ma.Links() {
		streams[l.Stream] = true
	}
	conns = len(streams)
	for {
		_, oa := la.counts()
		_, ob := lb.counts()
		if oa+ob <= conns {
			break
		}
		select {
		case <-la.closed:
		case <-lb.closed:
		case <-ctx.Done():
			b.Fatalf("%d connections open, %d carry pairs", oa+ob, conns)
		}
	}
	heap = memInUse() - base
	for _, mgr := range []*Manager{ma, mb} {
		if err := mgr.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return conns, heap
}

func memInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

func listenB(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}
