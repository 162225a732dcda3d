package s2stest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/config"
)

// fakeTB records what the stub reports instead of failing the test, and runs
// cleanups when told to.
type fakeTB struct {
	fatal, errs []string
	cleanups    []func()
}

func (tb *fakeTB) Helper()                   {}
func (tb *fakeTB) Cleanup(f func())          { tb.cleanups = append(tb.cleanups, f) }
func (tb *fakeTB) Logf(string, ...any)       {}
func (tb *fakeTB) Errorf(f string, a ...any) { tb.errs = append(tb.errs, fmt.Sprintf(f, a...)) }
func (tb *fakeTB) Fatalf(f string, a ...any) { tb.fatal = append(tb.fatal, fmt.Sprintf(f, a...)) }

func (tb *fakeTB) done() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}

// TestNewServerFails checks that a stub that cannot start says why through
// Fatalf and starts nothing.
func TestNewServerFails(t *testing.T) {
	for i, tc := range []struct {
		domain string
		opts   []Option
		want   string
	}{
		{domain: "", want: "s2stest: "},
		{domain: "bad domain!", want: "s2stest: "},
		{domain: stubDomain, opts: []Option{WithStartTLS("sometimes")}, want: "s2s: bad configuration"},
		{domain: stubDomain, opts: []Option{WithS2S(func(c *config.S2S) { c.Ciphers = "NO-SUCH-CIPHER" })}, want: "s2s: bad configuration"},
		{domain: stubDomain, opts: []Option{WithS2S(func(c *config.S2S) { c.DefaultPolicy = "maybe" })}, want: "policy: "},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			tb := &fakeTB{}
			defer tb.done()
			if s := NewServer(tb, tc.domain, tc.opts...); s != nil {
				t.Errorf("NewServer returned a server")
			}
			if len(tb.fatal) != 1 || !strings.Contains(tb.fatal[0], tc.want) {
				t.Errorf("Fatalf calls %q, want one containing %q", tb.fatal, tc.want)
			}
			if len(tb.cleanups) != 0 {
				t.Errorf("%d cleanups registered by a server that did not start", len(tb.cleanups))
			}
		})
	}
}

// TestCleanup checks that NewServer registers Close, which ends the stub
// without errors: its port no longer accepts.
func TestCleanup(t *testing.T) {
	tb := &fakeTB{}
	s := NewServer(tb, stubDomain)
	addr := s.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(tb.cleanups) != 1 {
		t.Fatalf("%d cleanups", len(tb.cleanups))
	}
	tb.done()
	if len(tb.errs) != 0 || len(tb.fatal) != 0 {
		t.Errorf("errors %q, fatal %q", tb.errs, tb.fatal)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("the stub still accepts after its cleanup")
	}
}

// TestPeers: WithPeer, entries of the address option and AddPeer all tell
// the stub where the host is, whatever form the domain is written in.
func TestPeers(t *testing.T) {
	for i, how := range []string{"WithPeer", "address", "AddPeer"} {
		t.Run(strconv.Itoa(i)+"-"+how, func(t *testing.T) {
			ln := listen(t)
			at := ln.Addr().(*net.TCPAddr).AddrPort()
			var opts []Option
			switch how {
			case "WithPeer":
				opts = append(opts, WithPeer("HOST.example.", at))
			case "address":
				opts = append(opts, WithS2S(func(c *config.S2S) {
					c.Address = append(c.Address, config.Address{Host: hostDomain, IP: at.Addr(), Port: int(at.Port())})
				}))
			}
			stub := NewServer(t, stubDomain, opts...)
			if how == "AddPeer" {
				stub.AddPeer("Host.Example", at)
			}
			h := newHost(t, ln, stub, "false", nil)
			stubSend(t, stub, `<message from='remote.example' to='host.example' id='o1'/>`)
			if got := h.nextDelivered(); got.ID != "o1" {
				t.Errorf("host received %+v", got)
			}
		})
	}
}

// TestRecord checks the waiting side of the recorder: Next returns items in
// order, each once, and gives up with the context's error.
func TestRecord(t *testing.T) {
	var r record[int]
	r.init()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int)
	go func() {
		for {
			v, err := r.next(ctx)
			if err != nil {
				close(got)
				return
			}
			got <- v
		}
	}()
	for i := range 3 {
		r.add(i)
		if v := <-got; v != i {
			t.Fatalf("next = %d, want %d", v, i)
		}
	}
	cancel()
	if _, ok := <-got; ok {
		t.Fatal("next returned after cancel")
	}
	if _, err := r.next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("next on an ended context = %v", err)
	}
	if all := r.all(); len(all) != 3 || all[2] != 2 {
		t.Errorf("all = %v", all)
	}
}
