package sm

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRing runs random pushes, drops and copies against a plain slice,
// across growth and the wrap of the head.
func TestRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r ring[int]
	var model []int
	next := 1 // 0 is a cleared slot
	for step := range 20000 {
		switch op := rng.IntN(12); {
		case op >= 10:
			n := rng.IntN(len(model) + 1)
			r.dropTail(n)
			model = model[:len(model)-n]
		case op < 4:
			r.push(next)
			model = append(model, next)
			next++
		case op < 6:
			vs := make([]int, rng.IntN(40))
			for i := range vs {
				vs[i] = next
				next++
			}
			r.pushAll(vs)
			model = append(model, vs...)
		case op < 9:
			n := rng.IntN(len(model) + 1)
			var seen []int
			r.each(n, func(v int) { seen = append(seen, v) })
			if !slices.Equal(seen, model[:n]) {
				t.Fatalf("step %d: each(%d) = %v, want %v", step, n, seen, model[:n])
			}
			var runs []int
			r.runs(n, func(run []int) {
				if len(run) == 0 {
					t.Fatalf("step %d: runs(%d) gave an empty run", step, n)
				}
				runs = append(runs, run...)
			})
			if !slices.Equal(runs, model[:n]) {
				t.Fatalf("step %d: runs(%d) = %v, want %v", step, n, runs, model[:n])
			}
			r.drop(n)
			model = model[n:]
		default:
			got := make([]int, r.len())
			r.copyTo(got)
			if !slices.Equal(got, model) {
				t.Fatalf("step %d: copy %v, want %v", step, got, model)
			}
		}
		if r.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, r.len(), len(model))
		}
		// A slot that holds nothing is cleared, so that what a dropped
		// stanza referred to can be collected.
		for i, v := range r.buf {
			if off := (i - r.head + len(r.buf)) % len(r.buf); off >= r.n && v != 0 {
				t.Fatalf("step %d: slot %d (%d past the head of %d) still holds %d", step, i, off, r.n, v)
			}
		}
	}
}
