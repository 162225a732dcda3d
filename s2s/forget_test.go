package s2s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/resolver"
)

// noSuchDomain is a resolver for which no remote domain exists.
type noSuchDomain struct{}

func (noSuchDomain) Resolve(_ context.Context, d string) ([]resolver.Target, error) {
	return nil, fmt.Errorf("no such domain %s: %w", d, errors.New("NXDOMAIN"))
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFailedPairsForgotten writes to tens of thousands of domains that do
// not exist: once their retry delay has passed, the Manager holds nothing
// for them, and its heap is back where it was.
func TestFailedPairsForgotten(t *testing.T) {
	const n = 20000
	clk := newFakeClock()
	forgot := make(chan pair, n)
	a := newNode(t, listen(t), []string{"a.test"}, nil, withConfig(func(c *Config) {
		c.clock = clk
		c.Resolver = noSuchDomain{}
		c.forgot = func(p pair) { forgot <- p }
		// The test's log and event buffers would keep a line and an
		// event per domain: they are not the Manager's memory.
		c.Logger = slog.New(slog.DiscardHandler)
		c.Observer = nil
	}))
	before := heapInUse()
	go func() {
		for i := range n {
			a.m.Send(context.Background(), []byte(fmt.Sprintf(`<message from='a.test' to='u@d%d.unknown.test' id='%d'/>`, i, i)))
		}
	}()
	for range n {
		if bo := a.nextBounce(); bo.Condition != "remote-server-not-found" {
			t.Fatalf("bounce %s: %s", bo.Condition, bo.Text)
		}
	}
	a.m.mu.Lock()
	held := len(a.m.out)
	a.m.mu.Unlock()
	if held != n {
		t.Fatalf("%d links held during the retry delay, want %d", held, n)
	}
	during := heapInUse()
	clk.Advance(retryDelay(1, time.Hour))
	for range n {
		select {
		case <-forgot:
		case <-time.After(wait):
			t.Fatal("not every failed pair was forgotten")
		}
	}
	a.m.mu.Lock()
	held = len(a.m.out)
	a.m.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d links held after the retry delay", held)
	}
	after := heapInUse()
	t.Logf("heap: %d KB before, %d KB while %d pairs wait, %d KB after", before>>10, during>>10, n, after>>10)
	// Generous: the pairs cost megabytes while they wait; what remains
	// (mostly the buckets of the Manager's map of links, which Go does
	// not shrink and later pairs reuse) must be a small fraction of that.
	if grown := int64(after) - int64(before); grown > int64(during-before)/4 && grown > 1<<20 {
		t.Fatalf("heap grew by %d KB after %d failed pairs were forgotten (%d KB while they waited)",
			grown>>10, n, (during-before)>>10)
	}
}

// TestAskedPairKept: a pair asked for during its retry delay is kept past
// it (so its delays keep doubling), and forgotten one quiet delay later.
func TestAskedPairKept(t *testing.T) {
	clk := newFakeClock()
	forgot := make(chan pair, 1)
	a := newNode(t, listen(t), []string{"a.test"}, nil, withConfig(func(c *Config) {
		c.clock = clk
		c.Resolver = noSuchDomain{}
		c.forgot = func(p pair) { forgot <- p }
	}))
	msg := `<message from='a.test' to='u@gone.test'/>`
	a.send(msg)
	a.nextBounce()
	a.send(msg) // during the delay
	if bo := a.nextBounce(); !strings.Contains(bo.Text, "next attempt in 1s") {
		t.Fatalf("bounce %q", bo.Text)
	}
	// The delay's check runs in its own goroutine: when the link is kept,
	// it re-arms; wait for that timer before moving on.
	clk.Advance(time.Second)
	waitTimers(t, clk, 1)
	select {
	case p := <-forgot:
		t.Fatalf("%v forgotten although asked for during its delay", p)
	default:
	}
	if a.m.outLinkFor(pair{"a.test", "gone.test"}) == nil {
		t.Fatal("the asked-for pair was forgotten")
	}
	clk.Advance(time.Second)
	select {
	case p := <-forgot:
		if p != (pair{"a.test", "gone.test"}) {
			t.Fatalf("forgot %v", p)
		}
	case <-time.After(wait):
		t.Fatal("the pair was not forgotten after a quiet delay")
	}
}

// waitTimers waits until the clock has n pending timers.
func waitTimers(t *testing.T, clk *fakeClock, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for clk.Timers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending, want %d", clk.Timers(), n)
		}
		runtime.Gosched()
	}
}
