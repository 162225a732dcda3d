package dialback

import (
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/xmpp-s2s/federation/internal/domain"
)

func TestPairs(t *testing.T) {
	var p Pairs
	if p.Has("a.example", "b.example") || p.Len() != 0 {
		t.Fatal("zero Pairs is not empty")
	}
	if err := p.Add("A.Example.", "bücher.example"); err != nil {
		t.Fatal(err)
	}
	if err := p.Add("a.example", "xn--bcher-kva.example"); err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 {
		t.Fatalf("Len = %d after adding one pair twice", p.Len())
	}
	for i, tc := range []struct {
		from, to string
		want     bool
	}{
		{"a.example", "xn--bcher-kva.example", true},
		{"A.EXAMPLE", "Bücher.Example", true},
		{"a.example.", "xn--bcher-kva.example.", true},
		{"xn--bcher-kva.example", "a.example", false}, // the reverse direction
		{"c.example", "xn--bcher-kva.example", false},
		{"", "", false},
		{"1.2.3.4", "a.example", false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := p.Has(tc.from, tc.to); got != tc.want {
				t.Fatalf("Has(%q, %q) = %v", tc.from, tc.to, got)
			}
			// Match agrees, and gives the pair as it was added.
			var want Pair
			if tc.want {
				want = Pair{"a.example", "xn--bcher-kva.example"}
			}
			if got, ok := p.Match(tc.from, tc.to); ok != tc.want || got != want {
				t.Fatalf("Match(%q, %q) = %q, %v; want %q, %v", tc.from, tc.to, got, ok, want, tc.want)
			}
		})
	}
	if err := p.Add("", "a.example"); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("Add of empty domain: %v", err)
	}
	p.Remove("c.example", "a.example") // absent: no effect
	p.Remove("A.example", "Bücher.example")
	if p.Has("a.example", "xn--bcher-kva.example") || p.Len() != 0 {
		t.Fatal("pair still present after Remove")
	}
}

// Has runs for every stanza: it must not allocate for domains in normal form,
// whether they are in the set or not.
func TestPairsHasAllocs(t *testing.T) {
	var p Pairs
	for i := range 50 {
		p.Add("s"+strconv.Itoa(i)+".example", "local.example")
	}
	for i, tc := range [][2]string{
		{"s7.example", "local.example"},
		{"nope.example", "local.example"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { p.Has(tc[0], tc[1]) }); n != 0 {
				t.Fatalf("Has allocates %v times", n)
			}
			if n := testing.AllocsPerRun(100, func() { p.Match(tc[0], tc[1]) }); n != 0 {
				t.Fatalf("Match allocates %v times", n)
			}
		})
	}
}

func TestPairsConcurrent(t *testing.T) {
	var p Pairs
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := "s" + strconv.Itoa(i) + ".example"
			for range 100 {
				p.Add(from, "local.example")
				p.Has(from, "local.example")
				p.Remove(from, "local.example")
				p.Len()
			}
			p.Add(from, "local.example")
		}()
	}
	wg.Wait()
	if p.Len() != 8 {
		t.Fatalf("Len = %d, want 8", p.Len())
	}
}

func BenchmarkPairsHas(b *testing.B) {
	var p Pairs
	p.Add("remote.example", "local.example")
	for b.Loop() {
		p.Has("remote.example", "local.example")
	}
}

// TestPairsClone: a clone starts with the pairs and then goes its own way.
func TestPairsClone(t *testing.T) {
	var p Pairs
	if err := p.Add("a.example", "b.example"); err != nil {
		t.Fatal(err)
	}
	c := p.Clone()
	if err := c.Add("c.example", "b.example"); err != nil {
		t.Fatal(err)
	}
	p.Remove("a.example", "b.example")
	if !c.Has("a.example", "b.example") || !c.Has("c.example", "b.example") || c.Len() != 2 {
		t.Errorf("clone lost pairs: len %d", c.Len())
	}
	if p.Has("c.example", "b.example") || p.Len() != 0 {
		t.Errorf("original changed with its clone: len %d", p.Len())
	}
	if (new(Pairs)).Clone().Len() != 0 {
		t.Error("clone of an empty set is not empty")
	}
}

// TestPairsList: every pair once, normalised and sorted.
func TestPairsList(t *testing.T) {
	var p Pairs
	for _, q := range [][2]string{{"c.example", "a.example"}, {"A.Example", "b.example"}, {"a.example", "B.example"}, {"a.example", "a.example"}} {
		if err := p.Add(q[0], q[1]); err != nil {
			t.Fatal(err)
		}
	}
	got := p.List()
	want := []Pair{{"a.example", "a.example"}, {"a.example", "b.example"}, {"c.example", "a.example"}}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if l := new(Pairs).List(); len(l) != 0 {
		t.Errorf("List of an empty set = %v", l)
	}
}

// TestPairsListAndMap: a set kept as a list and one grown past it into a
// map answer alike, and shrink back.
func TestPairsListAndMap(t *testing.T) {
	var p Pairs
	const n = 2*listMax + 3
	for i := range n {
		if err := p.Add("s"+strconv.Itoa(i)+".example", "Local.example"); err != nil {
			t.Fatal(err)
		}
		for j := range n {
			want := j <= i
			if got := p.Has("S"+strconv.Itoa(j)+".example", "local.example"); got != want {
				t.Fatalf("%d added: Has(s%d) = %v", i+1, j, got)
			}
		}
		if p.Len() != i+1 || len(p.List()) != i+1 {
			t.Fatalf("%d added: Len %d, List %d", i+1, p.Len(), len(p.List()))
		}
	}
	for i := range n {
		p.Remove("s"+strconv.Itoa(i)+".example", "local.example")
		if p.Has("s"+strconv.Itoa(i)+".example", "local.example") || p.Len() != n-i-1 {
			t.Fatalf("after removing s%d: Len %d", i, p.Len())
		}
		if i+1 < n && !p.Has("s"+strconv.Itoa(i+1)+".example", "local.example") {
			t.Fatalf("removing s%d lost s%d", i, i+1)
		}
	}
}

// TestPairsOneIsSmall: a stream's set of one pair, which every stream
// keeps for its life, is a short list, not a map (a map of one pair was
// about 350 bytes).
func TestPairsOneIsSmall(t *testing.T) {
	const n = 1000
	sets := make([]Pairs, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range sets {
		sets[i].Add("a.example", "b.example")
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 128 {
		t.Fatalf("a set of one pair took %d bytes", per)
	}
}
