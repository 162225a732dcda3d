package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echo is a target that sends back what it reads and records it.
type echo struct {
	ln  net.Listener
	got chan []byte
}

func newEcho(t *testing.T) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, got: make(chan []byte, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.got <- bytes.Clone(buf[:n])
						c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return e
}

func start(t *testing.T) (*Proxy, *echo) {
	t.Helper()
	e := newEcho(t)
	p, err := New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, e
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q, %v; want %q", buf, err, msg)
	}
}

// until polls cond (the proxy's counters change without a signal of
// their own) for a few seconds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestForward(t *testing.T) {
	p, e := start(t)
	c := dial(t, p)
	roundTrip(t, c, "hello")
	if got := <-e.got; string(got) != "hello" {
		t.Fatalf("target got %q", got)
	}
	until(t, "the counts", func() bool { return p.Forwarded(Down) == 5 && p.Read(Up) == 5 })
	if p.Accepted() != 1 || p.Forwarded(Up) != 5 || p.Read(Up) != 5 {
		t.Fatalf("accepted %d, forwarded %d of %d up", p.Accepted(), p.Forwarded(Up), p.Read(Up))
	}
}

// TestSilence: after Silence, writes succeed and nothing arrives either
// way; the sockets stay open; a new connection is forwarded again.
func TestSilence(t *testing.T) {
	p, e := start(t)
	c := dial(t, p)
	roundTrip(t, c, "before")
	<-e.got
	if n := p.Silence(); n != 1 {
		t.Fatalf("Silence hit %d connections", n)
	}
	for range 10 {
		if _, err := io.WriteString(c, "into the void"); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "the proxy to read what was written", func() bool { return p.Read(Up) == 6+130 })
	if p.Forwarded(Up) != 6 {
		t.Fatalf("forwarded %d bytes up while silent", p.Forwarded(Up))
	}
	select {
	case got := <-e.got:
		t.Fatalf("target got %q while silent", got)
	default:
	}
	// Still open: a read waits for its deadline, not an error.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("read on a silent connection: %v", err)
	}
	c2 := dial(t, p)
	roundTrip(t, c2, "after")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestReset(t *testing.T) {
	p, _ := start(t)
	c := dial(t, p)
	roundTrip(t, c, "x")
	if n := p.Reset(); n != 1 {
		t.Fatalf("Reset hit %d connections", n)
	}
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Reset: %v, want a reset", err)
	}
	roundTrip(t, dial(t, p), "after")
}

// TestDrop: the hole is where it was asked for, once.
func TestDrop(t *testing.T) {
	p, e := start(t)
	c := dial(t, p)
	roundTrip(t, c, "ab")
	<-e.got
	p.Drop(Up, 3, 4)
	io.WriteString(c, "0123456789")
	var got []byte
	for len(got) < 6 {
		got = append(got, <-e.got...)
	}
	if string(got) != "012789" {
		t.Fatalf("target got %q, want 012789", got)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "012789" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	roundTrip(t, c, "whole again")
}

// TestHalfClose: a clean close travels through, and the connection is
// forgotten once both sides are done.
func TestHalfClose(t *testing.T) {
	p, _ := start(t)
	c := dial(t, p)
	roundTrip(t, c, "x")
	c.(*net.TCPConn).CloseWrite()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after our close: %v, want EOF", err)
	}
	until(t, "the proxy to forget the connection", func() bool { return p.each(func(*pair) {}) == 0 })
}
