package s2s

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/resolver"
)

// The load test is long and opens thousands of sockets: it runs only when
// asked for, with
//
//	go test ./s2s -run TestLoad -s2s.load -timeout 10m
var (
	loadOn       = flag.Bool("s2s.load", false, "run TestLoad")
	loadLinks    = flag.Int("s2s.load.links", 1000, "TestLoad: concurrent links")
	loadRate     = flag.Int("s2s.load.rate", 10, "TestLoad: stanzas per second per link")
	loadDuration = flag.Duration("s2s.load.duration", 60*time.Second, "TestLoad: how long each link sends")
)

// fixedResolver sends every domain to one address.
type fixedResolver netip.AddrPort

func (r fixedResolver) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	return []resolver.Target{{Host: d, Addr: netip.AddrPort(r)}}, nil
}

// spreadDialer gives each connection the next source address of
// 127.0.0.0/8, as links from many servers would come from many addresses:
// no per-address limit or ephemeral port range is the bottleneck.
type spreadDialer struct{ n atomic.Uint32 }

func (d *spreadDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	i := d.n.Add(1)
	src := netip.AddrFrom4([4]byte{127, byte(1 + i/62500%250), byte(i / 250 % 250), byte(2 + i%250)})
	nd := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	return nd.DialContext(ctx, network, addr)
}

// rss is the resident set size from /proc, in bytes; 0 where there is none.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestLoad runs -s2s.load.links links from as many local domains of one
// Manager to b.test on another, each sending -s2s.load.rate stanzas a
// second for -s2s.load.duration. Every stanza is delivered once and in
// order per link, or bounced; the resident set stays flat after warm-up.
func TestLoad(t *testing.T) {
	if !*loadOn {
		t.Skip("a long load test; run with -s2s.load (see README)")
	}
	links, rate, dur := *loadLinks, *loadRate, *loadDuration
	la, lb := listen(t), listen(t)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	var dialer spreadDialer

	// last[i] is the sequence number b last delivered from link i.
	last := make([]atomic.Int64, links)
	for i := range last {
		last[i].Store(-1)
	}
	var delivered, outOfOrder atomic.Int64
	b, err := New(Config{
		S2S:         config.Default(),
		IsLocal:     func(d string) bool { return d == "b.test" },
		Resolver:    fixedResolver(addrOf(la)),
		DialContext: dialer.DialContext,
		Logger:      quiet,
		Bounce:      func(Bounce) {},
		Deliver: func(s Stanza) {
			var link, seq int
			if _, err := fmt.Sscanf(s.ID, "%d-%d", &link, &seq); err != nil || link < 0 || link >= links {
				outOfOrder.Add(1)
				return
			}
			if !last[link].CompareAndSwap(int64(seq-1), int64(seq)) {
				outOfOrder.Add(1)
			}
			delivered.Add(1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(lb)

	var bounced atomic.Int64
	var bmu sync.Mutex
	conds := map[stanza.Condition]int{}
	a, err := New(Config{
		S2S:         config.Default(),
		IsLocal:     func(d string) bool { return d != "b.test" },
		Resolver:    fixedResolver(addrOf(lb)),
		DialContext: dialer.DialContext,
		Logger:      quiet,
		Deliver:     func(Stanza) {},
		Bounce: func(bo Bounce) {
			bounced.Add(1)
			bmu.Lock()
			conds[bo.Condition]++
			bmu.Unlock()
			// A bounced stanza leaves a gap in its link's sequence.
			var link, seq int
			fmt.Sscanf(bo.Stanza.ID, "%d-%d", &link, &seq)
			last[link].CompareAndSwap(int64(seq-1), int64(seq))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(la)
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	defer b.Shutdown(ctx)
	defer a.Shutdown(ctx)

	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	perLink := int(dur.Seconds() * float64(rate))
	for i := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			from := fmt.Sprintf("l%d.test", i)
			for seq := range perLink {
				<-tick.C
				raw := fmt.Sprintf(`<message from='u@%s' to='v@b.test' id='%d-%d'><body>load</body></message>`, from, i, seq)
				if err := a.Send(context.Background(), []byte(raw)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	// Sample the resident set: the first third of the run is warm-up.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var warm, peak int64
	sample := time.NewTicker(5 * time.Second)
	defer sample.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-sample.C:
			r := rss()
			el := time.Since(start)
			t.Logf("%s: sent %d, delivered %d, bounced %d, rss %d MB, links %d", el.Round(time.Second),
				sent.Load(), delivered.Load(), bounced.Load(), r>>20, len(a.Links()))
			if el >= dur/3 && warm == 0 {
				warm = r
			}
			peak = max(peak, r)
		}
	}
	// Shutdown drains a's queues into the streams; b then delivers what
	// is in flight before its own shutdown.
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for delivered.Load()+bounced.Load() < sent.Load() && ctx.Err() == nil {
		select {
		case <-sample.C:
		case <-ctx.Done():
		}
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d, delivered %d, bounced %d %v; rss warm %d MB, peak %d MB",
		sent.Load(), delivered.Load(), bounced.Load(), conds, warm>>20, peak>>20)
	if got := delivered.Load() + bounced.Load(); got != sent.Load() {
		t.Fatalf("delivered + bounced = %d, sent %d", got, sent.Load())
	}
	if n := outOfOrder.Load(); n > 0 {
		t.Fatalf("%d stanzas delivered twice, out of order or unknown", n)
	}
	if warm > 0 && peak > warm*3/2+(64<<20) {
		t.Fatalf("resident set grew after warm-up: %d MB to %d MB", warm>>20, peak>>20)
	}
}
