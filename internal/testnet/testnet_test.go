package testnet

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// A refused address refuses, and no listener can take its port while the
// test runs.
func TestRefusedAddr(t *testing.T) {
	ap := RefusedAddr(t)
	if !ap.Addr().IsLoopback() || ap.Port() == 0 {
		t.Fatalf("RefusedAddr = %v", ap)
	}
	for range 3 {
		c, err := net.Dial("tcp", ap.String())
		if err == nil {
			c.Close()
			t.Fatal("a connection to the refused address was accepted")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial: %v, want connection refused", err)
		}
	}
	if ln, err := net.Listen("tcp", ap.String()); err == nil {
		ln.Close()
		t.Fatal("a listener took the refused port")
	}
}
