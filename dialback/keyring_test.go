package dialback

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memSource is a SecretSource in memory: a store whose watchers hear of a
// rotation only when the test says so, to play a node that lags behind.
type memSource struct {
	mu      sync.Mutex
	gen     Generation
	reads   int
	active  int           // reads in progress
	maxAct  int           // the most reads ever in progress at once
	gate    chan struct{} // when set, Secrets waits for it to close
	started chan struct{} // when set, Secrets signals on it
	watch   chan Generation
}

func (s *memSource) Secrets(ctx context.Context) (Generation, error) {
	s.mu.Lock()
	s.reads++
	s.active++
	s.maxAct = max(s.maxAct, s.active)
	gate, started := s.gate, s.started
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Generation{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Version == 0 {
		s.gen = FirstGeneration(NewSecret())
	}
	return s.gen, nil
}

func (s *memSource) Watch(ctx context.Context, f func(Generation)) error {
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	f(g)
	for {
		select {
		case g := <-s.watch:
			f(g)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *memSource) rotate(grace time.Duration) Generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen = s.gen.Next(NewSecret(), grace, time.Now())
	return s.gen
}

const (
	kRecv = "montague.example"
	kOrig = "capulet.example"
	kSID  = "D60000229F"
)

func TestKeyringGrace(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g1 := FirstGeneration("one")
	g2 := g1.Next("two", time.Minute, t0)
	if g2.Version != 2 || g2.Previous != "one" || !g2.PreviousUntil.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Next = %+v", g2)
	}
	if g3 := g2.Next("three", 0, t0); g3.Previous != "" {
		t.Fatalf("Next without grace kept %q", string(g3.Previous))
	}
	key := func(s Secret) string {
		k, err := s.Key(kRecv, kOrig, kSID)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for i, tc := range []struct {
		gen  Generation
		now  time.Time
		key  string
		want bool
	}{
		{g1, t0, key("one"), true},
		{g1, t0, key("two"), false},
		{g2, t0, key("two"), true},
		{g2, t0, key("one"), true}, // within grace
		{g2, t0.Add(time.Minute - time.Nanosecond), key("one"), true},
		{g2, t0.Add(time.Minute), key("one"), false}, // grace over
		{g2, t0, key("zero"), false},
		{g2, t0, "", false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			k := NewKeyring(tc.gen)
			k.now = func() time.Time { return tc.now }
			got, err := Check(k, tc.key, kRecv, kOrig, kSID)
			if err != nil || got != tc.want {
				t.Fatalf("Check = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// Rotations that follow each other within one grace period keep every
// retired secret until its own grace ends, so a key made several rotations
// ago still verifies; a rotation without grace drops them all.
func TestKeyringBackToBackRotations(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := FirstGeneration("s1")
	for i := 2; i <= 4; i++ { // three rotations, a second apart
		g = g.Next(Secret(fmt.Sprintf("s%d", i)), time.Minute, t0.Add(time.Duration(i-2)*time.Second))
	}
	if g.Version != 4 || g.Previous != "s3" || len(g.Older) != 2 || g.Older[0].Secret != "s2" || g.Older[1].Secret != "s1" {
		t.Fatalf("after three rotations: %v, older %d", g, len(g.Older))
	}
	key := func(s string) string {
		k, err := Secret(s).Key(kRecv, kOrig, kSID)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for i, tc := range []struct {
		at   time.Duration
		key  string
		want bool
	}{
		{0, key("s4"), true},
		{0, key("s3"), true},
		{0, key("s2"), true},
		{0, key("s1"), true}, // three rotations ago
		{time.Minute - time.Nanosecond, key("s1"), true},
		{time.Minute, key("s1"), false}, // its grace (from the first rotation) is over
		{time.Minute, key("s2"), true},
		{time.Minute + 2*time.Second, key("s3"), false},
		{0, key("s0"), false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			k := NewKeyring(g)
			k.now = func() time.Time { return t0.Add(tc.at) }
			if got, err := Check(k, tc.key, kRecv, kOrig, kSID); err != nil || got != tc.want {
				t.Fatalf("Check = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// A secret whose grace ended is not carried into the next generation.
	if n := g.Next("s5", time.Minute, t0.Add(time.Minute)); len(n.Older) != 2 || n.Older[0].Secret != "s3" || n.Older[1].Secret != "s2" {
		t.Fatalf("expired secrets carried on: previous %q, older %v", string(n.Previous), len(n.Older))
	}
	// After a leak: grace 0 accepts the new secret only.
	if n := g.Next("s5", 0, t0); n.Previous != "" || len(n.Older) != 0 {
		t.Fatalf("a rotation without grace kept %d older secrets", len(n.Older))
	}
	// However often one rotates, at most MaxRetired secrets are kept.
	for i := range 3 * MaxRetired {
		g = g.Next(Secret(fmt.Sprintf("x%d", i)), time.Hour, t0)
	}
	if n := 1 + len(g.Older); n != MaxRetired {
		t.Fatalf("%d retired secrets kept, want %d", n, MaxRetired)
	}
	if g.Previous != Secret(fmt.Sprintf("x%d", 3*MaxRetired-2)) || g.Older[0].Secret != Secret(fmt.Sprintf("x%d", 3*MaxRetired-3)) {
		t.Fatal("the newest retired secrets were not the ones kept")
	}
}

func TestKeyringMakesCurrentKeys(t *testing.T) {
	k := NewKeyring(FirstGeneration("one"))
	k.Set(FirstGeneration("one").Next("two", time.Minute, time.Now()))
	got, err := k.Key("Montague.Example", kOrig, kSID)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Secret("two").Key(kRecv, kOrig, kSID); got != want {
		t.Fatalf("Key did not use the current secret")
	}
	if _, err := k.Key("not a domain!", kOrig, kSID); err == nil {
		t.Fatal("Key accepted an invalid domain")
	}
}

func TestKeyringSetKeepsNewest(t *testing.T) {
	g1 := FirstGeneration("one")
	g2 := g1.Next("two", time.Minute, time.Now())
	k := NewKeyring(g2)
	k.Set(g1)
	if got := k.Generation(); got.Version != 2 {
		t.Fatalf("Set went back to v%d", got.Version)
	}
}

// A node that has not heard of a rotation yet is asked to verify a key made
// with the new secret: it reads the store and accepts it.
func TestKeyringRefreshesOnMiss(t *testing.T) {
	src := &memSource{watch: make(chan Generation)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, err := Follow(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	g2 := src.rotate(time.Minute) // the watch has not delivered it
	if k.Generation().Version != 1 {
		t.Fatal("the keyring saw the rotation too early for this test")
	}
	key, _ := g2.Current.Key(kRecv, kOrig, kSID)
	ok, err := Check(k, key, kRecv, kOrig, kSID)
	if err != nil || !ok {
		t.Fatalf("Check after rotation = %v, %v", ok, err)
	}
	if k.Generation().Version != 2 {
		t.Fatalf("keyring holds v%d after the refresh", k.Generation().Version)
	}
	// A key nobody made reads the store again, and is refused.
	reads := src.reads
	if ok, _ := Check(k, strings.Repeat("0", 64), kRecv, kOrig, kSID); ok {
		t.Fatal("a made-up key was accepted")
	}
	if src.reads != reads+1 {
		t.Fatalf("reads = %d, want %d", src.reads, reads+1)
	}

	// The watch delivers the next rotation.
	g3 := src.rotate(time.Minute)
	src.watch <- g3
	src.watch <- g3 // the second send returns once the first was applied
	if k.Generation().Version != 3 {
		t.Fatalf("watch: keyring holds v%d", k.Generation().Version)
	}
}

// However many bad keys arrive at once, the store is read by one of them at
// a time, and every check ends.
func TestKeyringRefreshIsShared(t *testing.T) {
	src := &memSource{watch: make(chan Generation)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, err := Follow(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	gate, started := make(chan struct{}), make(chan struct{}, 100)
	src.mu.Lock()
	src.reads, src.gate, src.started = 0, gate, started
	src.mu.Unlock()

	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := Check(k, "bad", kRecv, kOrig, kSID); ok || err != nil {
				t.Errorf("Check(bad) = %v, %v", ok, err)
			}
		}()
	}
	<-started // the first read is in flight
	close(gate)
	wg.Wait()
	if src.maxAct != 1 || src.reads < 1 || src.reads > n {
		t.Fatalf("%d checks read the store %d times, up to %d at once; want 1 to %d reads, one at a time", n, src.reads, src.maxAct, n)
	}
}

type failingSource struct{ memSource }

var errStore = errors.New("store down")

func (*failingSource) Secrets(context.Context) (Generation, error) { return Generation{}, errStore }

func TestFollowFails(t *testing.T) {
	if _, err := Follow(context.Background(), &failingSource{}); !errors.Is(err, errStore) {
		t.Fatalf("Follow = %v, want %v", err, errStore)
	}
}

func TestGenerationRedacted(t *testing.T) {
	g := FirstGeneration("hunter2").Next("swordfish", time.Minute, time.Now())
	for _, s := range []string{fmt.Sprint(g), fmt.Sprintf("%v %+v %#v %s", g, g, g, g)} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "swordfish") {
			t.Fatalf("a Generation printed its secret: %s", s)
		}
	}
}
