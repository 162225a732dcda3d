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
	next := 0
	for step := range 20000 {
		switch op := rng.IntN(12); {
		case op >= 10:
			n := rng.IntN(len(model) + 1)
			r.dropTail(n)
			model = model[:len(model)-n]
		case op < 6:
			r.push(next)
			model = append(model, next)
			next++
		case op < 9:
			n := rng.IntN(len(model) + 1)
			var seen []int
			r.each(n, func(v int) { seen = append(seen, v) })
			if !slices.Equal(seen, model[:n]) {
				t.Fatalf("step %d: each(%d) = %v, want %v", step, n, seen, model[:n])
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
	}
}
