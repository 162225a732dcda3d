// These tests pin Manager behaviour the demo's output depends on: a clean
// shutdown reports links closed without an error, and a peer's clean close
// is neither an error nor a warning.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// twoManagers federates a.example and b.example in plain text, sends one
// message each way so that each has an incoming and an outgoing link, and
// returns them with the events each observed and the log of b.
func twoManagers(t *testing.T) (a, b *s2s.Manager, events func(name string) []s2s.Event, downs <-chan s2s.Event, blog func() string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string][]s2s.Event{}
	var logBuf strings.Builder
	var logMu sync.Mutex
	blog = func() string { logMu.Lock(); defer logMu.Unlock(); return logBuf.String() }
	bDowns := make(chan s2s.Event, 16)
	lns := [2]net.Listener{}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	names := [2]string{"a.example", "b.example"}
	delivered := [2]chan s2s.Stanza{make(chan s2s.Stanza, 4), make(chan s2s.Stanza, 4)}
	var ms [2]*s2s.Manager
	for i, name := range names {
		peer := lns[1-i].Addr().(*net.TCPAddr).AddrPort()
		opts := config.Default()
		opts.Address = []config.Address{{Host: names[1-i], IP: peer.Addr(), Port: int(peer.Port())}}
		var w io.Writer = io.Discard
		if i == 1 {
			w = writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logBuf.Write(p) })
		}
		m, err := s2s.New(s2s.Config{
			S2S:     opts,
			IsLocal: func(d string) bool { return d == name },
			Deliver: func(s s2s.Stanza) { delivered[i] <- s },
			Bounce:  func(b s2s.Bounce) { t.Errorf("bounced: %s: %s", b.Condition, b.Text) },
			Observer: func(e s2s.Event) {
				mu.Lock()
				seen[name] = append(seen[name], e)
				mu.Unlock()
				if i == 1 && e.Kind == s2s.LinkDown {
					select {
					case bDowns <- e:
					default:
					}
				}
			},
			Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
		go m.Serve(lns[i])
		t.Cleanup(func() {
			// Shutdown, not Close: a stanza whose acknowledgement
			// (XEP-0198) is still on its way would be bounced by Close.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m.Shutdown(ctx)
		})
	}
	for i := range ms {
		raw := fmt.Sprintf("<message from='u@%s' to='v@%s' id='m%d'/>", names[i], names[1-i], i)
		if err := ms[i].Send(context.Background(), []byte(raw)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-delivered[1-i]:
		case <-time.After(30 * time.Second):
			t.Fatal("not delivered")
		}
	}
	events = func(name string) []s2s.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]s2s.Event(nil), seen[name]...)
	}
	return ms[0], ms[1], events, bDowns, blog
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Shutdown closes an incoming stream itself (closeStream(nil) in
// s2s/manager.go Shutdown), then the stream's reader fails on the closed
// connection and s2s/incoming.go readFailed returns that error, so the
// LinkDown event of a clean, local close carries "use of closed network
// connection". Outgoing links closed by the same Shutdown report nil.
func TestManagerBugIncomingLinkDownOnShutdown(t *testing.T) {
	a, _, events, _, _ := twoManagers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range events("a.example") {
		if e.Kind == s2s.LinkDown && e.Err != nil {
			t.Errorf("LinkDown %s %s<->%s after our own Shutdown: Err = %v, want nil (a clean close)",
				e.Link.Direction, e.Link.Local, e.Link.Remote, e.Err)
		}
	}
}

// A peer that ends its stream with </stream:stream> is normal operation,
// yet s2s/negotiate.go turns io.EOF into an unwrappable
// fmt.Errorf("the peer closed the stream") and s2s/outgoing.go down() logs
// every non-nil reason but ErrIdle at Warn level.
func TestManagerBugPeerCloseIsAWarning(t *testing.T) {
	a, _, _, downs, blog := twoManagers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// b sees a's clean close of b's outgoing link.
	for {
		select {
		case e := <-downs:
			if e.Link.Direction != s2s.Outgoing {
				continue
			}
			if e.Err != nil && !errors.Is(e.Err, io.EOF) {
				t.Errorf("peer's clean close reported as %q, which no sentinel matches", e.Err)
			}
			if log := blog(); strings.Contains(log, "level=WARN") {
				t.Errorf("a peer's clean close was logged as a warning:\n%s", log)
			}
			return
		case <-ctx.Done():
			t.Fatal("b saw no LinkDown of its outgoing link")
		}
	}
}
