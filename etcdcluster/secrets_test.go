package etcdcluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/dialback"
)

// Nodes starting together agree on one secret: one creates it, the others
// read it.
func TestSecretsCreatedOnce(t *testing.T) {
	p := prefix()
	const n = 8
	gens := make([]dialback.Generation, n)
	var wg sync.WaitGroup
	for i := range n {
		s := NewSecrets(client(t), p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.Secrets(testCtx(t))
			if err != nil {
				t.Error(err)
			}
			gens[i] = g
		}()
	}
	wg.Wait()
	for i, g := range gens {
		if g.Version != 1 || g.Current == "" || g.Current != gens[0].Current {
			t.Fatalf("node %d got v%d, a different secret from node 0", i, g.Version)
		}
	}
}

// Rotations from several nodes at once each make a version of their own;
// none is lost.
func TestSecretsRotate(t *testing.T) {
	p := prefix()
	s := NewSecrets(client(t), p)
	g1, err := s.Secrets(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := s.Rotate(testCtx(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g2.Version != 2 || g2.Previous != g1.Current || g2.Current == g1.Current || time.Until(g2.PreviousUntil) <= 0 {
		t.Fatalf("after Rotate: %v, previous matches v1: %v", g2, g2.Previous == g1.Current)
	}
	const n = 6
	var wg sync.WaitGroup
	versions := make(chan int64, n)
	for range n {
		r := NewSecrets(client(t), p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := r.Rotate(testCtx(t), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			versions <- g.Version
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("two rotations made v%d", v)
		}
		seen[v] = true
	}
	g, err := s.Secrets(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 2+n {
		t.Fatalf("after %d more rotations: v%d, want v%d", n, g.Version, 2+n)
	}
}

// A Keyring following the store sees rotations through the watch, and
// one node verifies the keys another made before, during and after one.
func TestSecretsFollow(t *testing.T) {
	p := prefix()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := dialback.Follow(ctx, NewSecrets(client(t), p))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dialback.Follow(ctx, NewSecrets(client(t), p))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, maker, checker *dialback.Keyring) {
		t.Helper()
		key, err := maker.Key("remote.test", "cluster.test", "stream-1")
		if err != nil {
			t.Fatal(err)
		}
		ok, err := dialback.Check(checker, key, "remote.test", "cluster.test", "stream-1")
		if err != nil || !ok {
			t.Fatalf("%s: Check = %v, %v", what, ok, err)
		}
	}
	check("before", a, b)
	old, _ := a.Key("remote.test", "cluster.test", "stream-1")

	// Watch b for the rotation, to know when the watch delivered it.
	seen := make(chan dialback.Generation, 16)
	go NewSecrets(client(t), p).Watch(ctx, func(g dialback.Generation) { seen <- g })
	<-seen // the generation before the rotation

	rot := NewSecrets(client(t), p)
	g2, err := rot.Rotate(testCtx(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if g := <-seen; g.Version != g2.Version {
		t.Fatalf("watch delivered v%d, want v%d", g.Version, g2.Version)
	}
	// Whether or not a and b have seen it yet, keys made by either are
	// accepted by the other, and the key made before the rotation too.
	check("after, a to b", a, b)
	check("after, b to a", b, a)
	ok, err := dialback.Check(b, old, "remote.test", "cluster.test", "stream-1")
	if err != nil || !ok {
		t.Fatalf("the key made before the rotation: Check = %v, %v", ok, err)
	}
}

// The secret is stored, but never shows in an error or a printed value.
func TestSecretsNotPrinted(t *testing.T) {
	p := prefix()
	c := client(t)
	s := NewSecrets(c, p)
	g, err := s.Secrets(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(testCtx(t), p+"secret", `{"version":"x","current":"`+string(g.Current)+`"}`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Secrets(testCtx(t))
	if err == nil || strings.Contains(err.Error(), string(g.Current)) {
		t.Fatalf("a corrupt secret: err = %v", err)
	}
}

// Rotations back to back keep every retired secret whose grace runs, in
// the stored generation that all nodes read.
func TestSecretsBackToBackRotations(t *testing.T) {
	p := prefix()
	s := NewSecrets(client(t), p)
	ctx := testCtx(t)
	g1, err := s.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var g dialback.Generation
	for range 3 {
		if g, err = s.Rotate(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	read, err := NewSecrets(client(t), p).Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if read.Version != 4 || read.Current != g.Current || len(read.Older) != 2 || read.Older[1].Secret != g1.Current ||
		!read.Older[1].Until.Equal(g.Older[1].Until) {
		t.Fatalf("stored after three rotations: %v (older %d), v1's secret kept: %v", read, len(read.Older),
			len(read.Older) == 2 && read.Older[1].Secret == g1.Current)
	}
	k := dialback.NewKeyring(read)
	key, err := dialback.Secret(g1.Current).Key("cluster.test", "remote.test", "id")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dialback.Check(k, key, "cluster.test", "remote.test", "id"); !ok || err != nil {
		t.Fatalf("a key of v1 at v4: %v, %v", ok, err)
	}
}
