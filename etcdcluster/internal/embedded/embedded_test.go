package embedded

import (
	"context"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	s, err := Start(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("Get = %v, %v", r, err)
	}
}
