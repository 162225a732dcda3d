package bench_test

import (
	"math"
	"os"

	"github.com/xmpp-s2s/federation/internal/bench"
)

// A report prints as one Markdown table; the ratio columns say how many
// times better ours is (or the two-process run is than the in-process one),
// whichever way the measurement points.
func ExampleReport_Print() {
	rep := bench.Report{Rows: []bench.Row{
		{Name: "messages, one link, TLS", Unit: "stanzas/s", HigherBetter: true, Ours: 500_000, TwoProc: 400_000, Raw: 5_000_000, Prosody: 50_000, Ejabberd: 100_000},
		{Name: "first stanza on a new link, TLS", Unit: "ms", Ours: 4, TwoProc: math.NaN(), Raw: math.NaN(), Prosody: 20, Ejabberd: math.NaN()},
	}}
	rep.Print(os.Stdout)
	// Output:
	// | measurement | unit | ours | two processes | two ÷ one process | raw TLS/TCP | ours ÷ raw | Prosody | ours ÷ Prosody | ejabberd | ours ÷ ejabberd |
	// |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
	// | messages, one link, TLS | stanzas/s | 500000 | 400000 | 0.80× | 5000000 | 0.10× | 50000 | 10.00× | 100000 | 5.00× |
	// | first stanza on a new link, TLS | ms | 4.00 | – | – | – | – | 20.0 | 5.00× | – | – |
}
