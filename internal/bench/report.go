package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Row is one line of the table: one measurement, the median of its runs in
// each column. A column that was not measured holds NaN.
type Row struct {
	Name string
	Unit string
	// HigherBetter says which way the ratio points: throughput is better
	// higher, latency and memory lower.
	HigherBetter bool
	Ours         float64
	// TwoProc is ours with the receiving Manager in a child process.
	TwoProc  float64
	Raw      float64 // raw crypto/tls (or TCP) with the same bytes: the ceiling
	Prosody  float64
	Ejabberd float64
}

// advantage returns how many times better ours is than other (above 1: we
// win), or NaN when either is missing or zero.
func (r Row) advantage(other float64) float64 {
	if math.IsNaN(r.Ours) || math.IsNaN(other) || r.Ours == 0 || other == 0 {
		return math.NaN()
	}
	if r.HigherBetter {
		return r.Ours / other
	}
	return other / r.Ours
}

// twoVsOne returns how many times better the two-process run did than the
// in-process one (below 1: crossing processes costs), or NaN.
func (r Row) twoVsOne() float64 {
	if math.IsNaN(r.Ours) || math.IsNaN(r.TwoProc) || r.Ours == 0 || r.TwoProc == 0 {
		return math.NaN()
	}
	if r.HigherBetter {
		return r.TwoProc / r.Ours
	}
	return r.Ours / r.TwoProc
}

// Report is the result of Run.
type Report struct {
	Rows []Row
	// Notes are printed under the table: what was skipped and why.
	Notes []string
}

// Print writes the report as a Markdown table. "ours ÷ X" is how many times
// better ours is than column X: above 1 we are ahead of it, below 1 behind.
func (r Report) Print(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| measurement | unit | ours | two processes | two ÷ one process | raw TLS/TCP | ours ÷ raw | Prosody | ours ÷ Prosody | ejabberd | ours ÷ ejabberd |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Name, row.Unit,
			num(row.Ours), num(row.TwoProc), ratio(row.twoVsOne()), num(row.Raw), ratio(row.advantage(row.Raw)),
			num(row.Prosody), ratio(row.advantage(row.Prosody)),
			num(row.Ejabberd), ratio(row.advantage(row.Ejabberd)))
	}
	for _, n := range r.Notes {
		b.WriteString("\n" + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// median returns the median of vs, NaN for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
