package s2s_test

import (
	"context"
	"strconv"
	"testing"

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

// BenchmarkPing is XEP-0199 round trips, 100 outstanding: both directions
// of the hot path, and the Manager's reply routing.
func BenchmarkPing(b *testing.B) {
	for _, tls := range []bool{true, false} {
		b.Run("tls="+strconv.FormatBool(tls), func(b *testing.B) {
			p, err := bench.NewPair(tls)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			b.ReportAllocs()
			b.ResetTimer()
			if _, err := p.Pings(context.Background(), b.N, 100); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
		})
	}
}
