package bench

import (
	"bufio"
	"context"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// memSample is the process's memory at one moment, after a full collection
// with the freed pages given back to the OS.
type memSample struct {
	heap       uint64 // live heap objects plus goroutine stacks, bytes
	stacks     uint64 // goroutine stacks alone, bytes
	rss        uint64 // resident set size, bytes; 0 where /proc is missing
	goroutines int
}

func sampleMem() memSample {
	// Several collections, so that stacks that can shrink have shrunk, as
	// they would on a server that has been running a while.
	for range 6 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc + ms.StackInuse, stacks: ms.StackInuse, rss: rss(), goroutines: runtime.NumGoroutine()}
}

// perEnd is the growth from before to after divided over ends link ends.
func perEnd(before, after memSample, ends int) (heap, stacks, rssPer float64) {
	heap = (float64(after.heap) - float64(before.heap)) / float64(ends)
	stacks = (float64(after.stacks) - float64(before.stacks)) / float64(ends)
	if before.rss > 0 && after.rss > 0 {
		rssPer = (float64(after.rss) - float64(before.rss)) / float64(ends)
	}
	return heap, stacks, rssPer
}

// rss reads VmRSS from /proc/self/status.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// settle waits until the number of goroutines stops changing, so that the
// short-lived ones of link set-up (dialback verification streams) are gone
// before memory is sampled. It gives up after a few seconds.
func settle(ctx context.Context) {
	last := -1
	for range 100 {
		n := runtime.NumGoroutine()
		if n == last {
			return
		}
		last = n
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// quiet brings the links to the state of idle links on a server that has
// run a while: the Manager hands the reader of a link that read nothing
// for a second or two to a fresh goroutine that waits for its socket with
// a small stack, and parks it again when new goroutines start with a
// smaller one (s2s/park.go). The runtime sets that starting size at each
// collection, from the stacks it finds, and collects at least every two
// minutes. Two collections here stand for those: the first sees the
// readers blocked in their TLS reads (new goroutines start at 4 KiB),
// the second, half of d later, sees them parked (2 KiB); the sweeps in
// the other half park them again. then, when not nil, runs with each
// collection (the two-process experiment's child collects with us).
// Default's d is five sweeps: two per half are enough on a quiet machine,
// more under load.
func quiet(ctx context.Context, d time.Duration, then func()) {
	for range 2 {
		runtime.GC()
		if then != nil {
			then()
		}
		select {
		case <-time.After(d / 2):
		case <-ctx.Done():
			return
		}
	}
}

// rawIdle holds n idle connections, TLS 1.3 or plain, with a goroutine per
// end blocked in Read on a 4 KiB buffer: the least an idle link can cost
// with crypto/tls and a goroutine per connection. It returns a func that
// closes them.
func rawIdle(e *env, tlsOn bool, n int) (func(), error) {
	var conns []net.Conn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, s, err := rawConns(e, tlsOn)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c, s)
		for _, end := range []net.Conn{c, s} {
			go func() {
				r := bufio.NewReaderSize(end, 4096)
				r.ReadByte()
			}()
		}
	}
	return closeAll, nil
}
