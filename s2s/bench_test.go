package s2s_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/bench"
)

// The hot path end to end, in one process: Send → queue → write (batched)
// → TLS → read → parse → Deliver, on one established link. Allocations are
// those of both Managers per stanza. The side-by-side table with the raw
// TLS ceiling is `go run ./examples/bench` (BENCHMARKS.md).

func BenchmarkSendDeliver(b *testing.B) {
	for _, tls := range []bool{true, false} {
		b.Run("tls="+strconv.FormatBool(tls), func(b *testing.B) {
			p, err := bench.NewPair(tls)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ReportAllocs()
			b.SetBytes(180)
			b.ResetTimer()
			if _, err := p.Messages(context.Background(), b.N, 10_000); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "stanzas/s")
		})
	}
}

// BenchmarkPing is XEP-0199 round trips, 100 or 1000 outstanding (the two
// windows of examples/bench's ping rows): both directions of the hot path,
// and the Manager's reply routing. Window 100 is bound by the hand-offs of
// a round trip (latency), window 1000 by the CPU per stanza.
func BenchmarkPing(b *testing.B) {
	benchPings(b, (*bench.Pair).Pings)
}

// BenchmarkPingHost is BenchmarkPing with one Manager: the receiving one,
// answering the raw load generator of examples/bench's host rows (pings
// written in batches on a hand-negotiated bidi stream, results read as
// bytes). Its CPU is the answering Manager's ping path and the load
// generator's, which costs what it costs against a bare TLS echo.
func BenchmarkPingHost(b *testing.B) {
	benchPings(b, (*bench.Pair).HostPings)
}

func benchPings(b *testing.B, pings func(p *bench.Pair, ctx context.Context, n, window int) (time.Duration, error)) {
	for _, tls := range []bool{true, false} {
		for _, window := range []int{100, 1000} {
			b.Run("tls="+strconv.FormatBool(tls)+"/window="+strconv.Itoa(window), func(b *testing.B) {
				p, err := bench.NewPair(tls)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				b.ReportAllocs()
				b.ResetTimer()
				if _, err := pings(p, context.Background(), b.N, window); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
			})
		}
	}
}
