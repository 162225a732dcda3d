package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// listen returns a loopback listener that accepts connections onto a
// channel until the test ends.
func listen(t *testing.T, network, addr string) (netip.AddrPort, <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return netip.MustParseAddrPort(l.Addr().String()), conns
}

// refusing returns a loopback address where nothing listens: the port was
// just released, so a connection is refused.
func refusing(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}

func TestDialRefusedThenNext(t *testing.T) {
	dead := refusing(t)
	live, conns := listen(t, "tcp", "127.0.0.1:0")
	targets := []Target{
		{Host: "first.example.org", Addr: dead},
		{Host: "second.example.org", Addr: live, Direct: true},
	}
	var d Dialer
	conn, got, err := d.Dial(t.Context(), targets)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got != targets[1] {
		t.Errorf("connected to %v, want %v", got, targets[1])
	}
	peer := <-conns
	defer peer.Close()
	if peer.RemoteAddr().String() != conn.LocalAddr().String() {
		t.Errorf("listener accepted %v, dialer is %v", peer.RemoteAddr(), conn.LocalAddr())
	}
}

func TestDialAllRefused(t *testing.T) {
	targets := []Target{
		{Host: "a.example.org", Addr: refusing(t)},
		{Host: "b.example.org", Addr: refusing(t)},
	}
	var d Dialer
	_, _, err := d.Dial(t.Context(), targets)
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DialError", err)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("%v is not ErrUnreachable", err)
	}
	if de.Timeout() {
		t.Errorf("refused connections reported as a timeout")
	}
	if len(de.Attempts) != 2 || de.Attempts[0].Target != targets[0] || de.Attempts[1].Target != targets[1] {
		t.Errorf("attempts %v, want one per target in order", de.Attempts)
	}
}

func TestDialNoTargets(t *testing.T) {
	var d Dialer
	if _, _, err := d.Dial(t.Context(), nil); !errors.Is(err, ErrNoService) {
		t.Errorf("got %v, want ErrNoService", err)
	}
}

// TestDialOrder records the addresses a failing dialer is asked for:
// families interleave within one host (starting with the first address'
// family), and hosts, or the same host with another TLS mode, follow each
// other in order.
func TestDialOrder(t *testing.T) {
	tg := func(host, addr string, direct bool) Target {
		return Target{Host: host, Addr: netip.MustParseAddrPort(addr), Direct: direct}
	}
	for i, tc := range []struct {
		targets []Target
		want    []string
	}{
		0: { // ip_versions [4, 6]
			targets: []Target{
				tg("a", "192.0.2.1:1", false), tg("a", "192.0.2.2:1", false),
				tg("a", "[2001:db8::1]:1", false), tg("a", "[2001:db8::2]:1", false),
			},
			want: []string{"192.0.2.1:1", "[2001:db8::1]:1", "192.0.2.2:1", "[2001:db8::2]:1"},
		},
		1: { // ip_versions [6, 4]
			targets: []Target{
				tg("a", "[2001:db8::1]:1", false), tg("a", "[2001:db8::2]:1", false), tg("a", "[2001:db8::3]:1", false),
				tg("a", "192.0.2.1:1", false),
			},
			want: []string{"[2001:db8::1]:1", "192.0.2.1:1", "[2001:db8::2]:1", "[2001:db8::3]:1"},
		},
		2: { // groups are not mixed
			targets: []Target{
				tg("a", "192.0.2.1:1", true), tg("a", "[2001:db8::1]:1", true),
				tg("a", "192.0.2.1:2", false),
				tg("b", "192.0.2.9:1", false), tg("b", "[2001:db8::9]:1", false),
			},
			want: []string{"192.0.2.1:1", "[2001:db8::1]:1", "192.0.2.1:2", "192.0.2.9:1", "[2001:db8::9]:1"},
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var mu sync.Mutex
			var asked []string
			refused := errors.New("refused")
			d := Dialer{
				// A delay that never fires: every next attempt is
				// started by the failure of the previous one.
				after: func(time.Duration) <-chan time.Time { return nil },
				DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					defer mu.Unlock()
					if network != "tcp" {
						t.Errorf("network %q", network)
					}
					asked = append(asked, addr)
					return nil, refused
				},
			}
			_, _, err := d.Dial(t.Context(), tc.targets)
			if !errors.Is(err, refused) {
				t.Errorf("got %v, want the dialer's error", err)
			}
			if !slices.Equal(asked, tc.want) {
				t.Errorf("dialed %v, want %v", asked, tc.want)
			}
		})
	}
}

// TestDialStagger checks RFC 8305 racing without sleeping: the first address
// hangs, the test fires the staggering delay, the second address connects,
// and the hanging attempt is cancelled.
func TestDialStagger(t *testing.T) {
	first := netip.MustParseAddrPort("[2001:db8::1]:5269")
	second := netip.MustParseAddrPort("192.0.2.1:5269")
	tick := make(chan time.Time)
	delays := make(chan time.Duration, 4)
	hung := make(chan struct{})
	cancelled := make(chan error, 1)
	client, server := net.Pipe()
	defer server.Close()
	d := Dialer{
		Delay: 300 * time.Millisecond,
		after: func(delay time.Duration) <-chan time.Time {
			delays <- delay
			return tick
		},
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			switch addr {
			case first.String():
				close(hung)
				<-ctx.Done()
				cancelled <- ctx.Err()
				return nil, ctx.Err()
			case second.String():
				return client, nil
			}
			t.Errorf("dialed %s", addr)
			return nil, errors.New("unexpected address")
		},
	}
	type dialed struct {
		conn   net.Conn
		target Target
		err    error
	}
	// The deadline only keeps a broken Dialer from hanging the test: the
	// hung attempt would otherwise wait forever for the second one.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan dialed, 1)
	go func() {
		conn, tg, err := d.Dial(ctx, []Target{{Host: "h", Addr: first}, {Host: "h", Addr: second}})
		done <- dialed{conn, tg, err}
	}()
	<-hung
	select {
	case got := <-delays:
		if got != 300*time.Millisecond {
			t.Errorf("staggering delay %v, want the Dialer's 300ms", got)
		}
	case res := <-done:
		t.Fatalf("no staggered attempt while the first hung: %v", res.err)
	}
	tick <- time.Time{}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.conn != client || res.target.Addr != second {
		t.Errorf("got %v, want the second address' connection", res.target)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("losing attempt ended with %v, want it cancelled", err)
	}
}

// TestDialTimeout dials a black hole, a listener whose accept queue is full
// so the kernel drops new SYNs: only Dialer.Timeout ends the attempt, then
// the next target is used.
func TestDialTimeout(t *testing.T) {
	hole := blackHole(t)
	live, conns := listen(t, "tcp", "127.0.0.1:0")
	d := Dialer{Timeout: 200 * time.Millisecond}

	_, _, err := d.Dial(t.Context(), []Target{{Host: "hole", Addr: hole}})
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DialError", err)
	}
	if !de.Timeout() {
		t.Errorf("%v: want a timeout", err)
	}

	conn, got, err := d.Dial(t.Context(), []Target{{Host: "hole", Addr: hole}, {Host: "live", Addr: live}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	(<-conns).Close()
	if got.Host != "live" {
		t.Errorf("connected to %v, want the live target", got)
	}
}

// TestDialContextCancelled checks that the context, not only Timeout, ends a
// dial, and that the error says so.
func TestDialContextCancelled(t *testing.T) {
	started := make(chan struct{})
	d := Dialer{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := d.Dial(ctx, []Target{
			{Host: "a", Addr: netip.MustParseAddrPort("192.0.2.1:1")},
			{Host: "b", Addr: netip.MustParseAddrPort("192.0.2.2:1")},
		})
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	var de *DialError
	if !errors.As(err, &de) || de.Cause != context.Canceled {
		t.Fatalf("got %v, want a *DialError caused by cancellation", err)
	}
	if len(de.Attempts) != 1 {
		t.Errorf("%d attempts, want 1: the second target must not be tried", len(de.Attempts))
	}
}
