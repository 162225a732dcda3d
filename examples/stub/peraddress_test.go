package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/internal/wire"
	"github.com/xmpp-s2s/federation/s2s"
)

// TestPerAddress: every peer of a stub on loopback comes from 127.0.0.1, so
// by default the stub bounds nothing per address (more streams than the
// library's default bound are all served); -max-per-address sets a bound.
func TestPerAddress(t *testing.T) {
	for i, tc := range []struct {
		args     []string
		streams  int // opened and held, each served
		refusing bool
	}{
		0: {streams: s2s.DefaultMaxPerAddress + 5},
		1: {args: []string{"-max-per-address", "3"}, streams: 3, refusing: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			stdout := make(lineWriter, 100)
			var stderr lockedBuffer
			done := make(chan int, 1)
			args := append([]string{"-domain", "stub.test", "-listen", "127.0.0.1:0"}, tc.args...)
			go func() { done <- run(ctx, args, strings.NewReader(""), stdout, &stderr) }()
			t.Cleanup(func() {
				cancel()
				<-done
			})
			var listening event
			select {
			case l := <-stdout:
				if err := json.Unmarshal([]byte(l), &listening); err != nil || listening.Event != evListening {
					t.Fatalf("first event %q", l)
				}
			case code := <-done:
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			open := func() (*wire.Reader, error) {
				conn, err := net.Dial("tcp", listening.Addr)
				if err != nil {
					return nil, err
				}
				t.Cleanup(func() { conn.Close() })
				conn.SetDeadline(time.Now().Add(wait))
				if err := wire.WriteHeader(conn, wire.Header{From: "host.test", To: "stub.test"}); err != nil {
					return nil, err
				}
				r := wire.NewReader(conn, wire.DefaultLimits)
				if _, err := r.ReadHeader(); err != nil {
					return nil, err
				}
				_, err = r.Next() // features, or the refusal
				return r, err
			}
			for n := range tc.streams {
				if _, err := open(); err != nil {
					t.Fatalf("stream %d: %v", n+1, err)
				}
			}
			_, err := open()
			var pe *wire.PeerError
			switch {
			case tc.refusing && (!errors.As(err, &pe) || pe.Err.Err != "policy-violation"):
				t.Fatalf("stream %d: %v, want policy-violation", tc.streams+1, err)
			case !tc.refusing && err != nil:
				t.Fatalf("stream %d: %v", tc.streams+1, err)
			}
		})
	}
}
